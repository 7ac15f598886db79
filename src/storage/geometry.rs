//! How many flash bytes items take in a sequential-storage queue, and how far the log may grow before it
//! would overwrite the page that holds its base.
//!
//! sequential-storage (7.x) keeps the first and last word of each page for the page state, writes an item as
//! an 8-byte header padded to a word followed by its data padded to a word, never splits an item over two
//! pages, moves to the next page only when an item does not fit the rest of the current one, and (when
//! allowed to overwrite) erases the next page only at that moment. So every page the log leaves holds at least
//! `usable - max_item + 1` of its bytes, and a log that has written `S` bytes since the start of its base
//! spans at most `S / (usable - max_item + 1) + 2` pages: with `S <= (pages - 1) * (usable - max_item + 1)`
//! it never reaches back to the page where the base starts.

/// Frames of slack kept below that bound for writes cut by a power loss that a load cannot see: each load
/// accounts for one invisible interrupted write after the newest frame; this margin covers further ones
/// when the power fails during several writes in a row with no complete write in between.
pub(crate) const TORN_MARGIN: u32 = 4;

/// The flash geometry as the store uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// sequential-storage's word: the larger of the read and write sizes.
    word: u32,
    /// An item's header, padded to a word.
    header: u32,
    /// Flash bytes of the largest frame (the store's frame buffer) as an item.
    pub max_item: u32,
    /// Flash bytes of a mark frame as an item.
    pub mark_item: u32,
    /// Bytes the log may take from the start of its base (see the module docs).
    pub limit: u32,
    /// Bytes all pages offer to items.
    pub capacity: u32,
}

const fn round_up(n: u32, word: u32) -> Option<u32> {
    match n.checked_add(word - 1) {
        Some(m) => Some(m / word * word),
        None => None,
    }
}

impl Geometry {
    /// The geometry of `len` bytes of a flash with these sizes, for frames of up to `frame` bytes;
    /// `None` if sequential-storage cannot use it or a frame does not fit a page.
    pub(crate) const fn new(
        read_size: usize,
        write_size: usize,
        erase_size: usize,
        len: u32,
        frame: usize,
        mark: usize,
    ) -> Option<Self> {
        let word = if read_size > write_size { read_size } else { write_size };
        // sequential-storage supports words up to 32 bytes that are multiples of each other.
        if word == 0 || word > 32 || (read_size == 0 || write_size == 0) {
            return None;
        }
        if !(word.is_multiple_of(read_size) && word.is_multiple_of(write_size)) {
            return None;
        }
        let word = word as u32;
        if erase_size > u32::MAX as usize || frame > u16::MAX as usize {
            return None;
        }
        let erase = erase_size as u32;
        if erase == 0 || !erase.is_multiple_of(word) || !len.is_multiple_of(erase) {
            return None;
        }
        let pages = len / erase;
        let usable = match erase.checked_sub(2 * word) {
            Some(u) => u,
            None => return None,
        };
        let Some(header) = round_up(8, word) else { return None };
        let (Some(frame_data), Some(mark_data)) = (round_up(frame as u32, word), round_up(mark as u32, word)) else {
            return None;
        };
        let max_item = header + frame_data;
        let mark_item = header + mark_data;
        if pages < 2 || max_item > usable {
            return None;
        }
        let per_page = usable - max_item + 1;
        let Some(bound) = (pages - 1).checked_mul(per_page) else { return None };
        let Some(margin) = TORN_MARGIN.checked_mul(max_item) else { return None };
        let Some(limit) = bound.checked_sub(margin) else { return None };
        let Some(capacity) = pages.checked_mul(usable) else { return None };
        Some(Self { word, header, max_item, mark_item, limit, capacity })
    }

    /// Flash bytes an item of `len` data bytes takes.
    pub(crate) const fn item(&self, len: usize) -> u32 {
        let len = if len > u16::MAX as usize { u16::MAX as u32 } else { len as u32 };
        match round_up(len, self.word) {
            Some(d) => self.header + d,
            None => u32::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stm32f7_words_and_sectors() {
        // 16-byte words, 3 sectors of 128 KiB, 512-byte frames, 28-byte marks.
        let g = Geometry::new(1, 16, 128 * 1024, 3 * 128 * 1024, 512, 28).unwrap();
        assert_eq!((g.header, g.max_item, g.mark_item), (16, 528, 48));
        assert_eq!(g.item(29), 16 + 32);
        assert_eq!(g.limit, 2 * (128 * 1024 - 32 - 528 + 1) - TORN_MARGIN * 528);
        assert_eq!(g.capacity, 3 * (128 * 1024 - 32));
    }

    #[test]
    fn unusable_layouts() {
        assert_eq!(Geometry::new(1, 4, 1024, 1024, 256, 28), None, "one page");
        assert_eq!(Geometry::new(1, 4, 1024, 3000, 256, 28), None, "not whole pages");
        assert_eq!(Geometry::new(1, 4, 1024, 4096, 1020, 28), None, "frame larger than a page");
        assert_eq!(Geometry::new(1, 64, 4096, 8192, 256, 28), None, "word over 32 bytes");
        assert_eq!(Geometry::new(3, 4, 4096, 8192, 256, 28), None, "sizes not multiples");
        assert_eq!(Geometry::new(1, 1, 4096, 8192, 70_000, 28), None, "frame over u16");
        assert!(Geometry::new(1, 1, 4096, 8192, 256, 28).is_some());
    }
}
