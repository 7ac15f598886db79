//! How one Ethernet frame crosses the LAN9118's FIFOs, as pure functions of words and bytes, so the rules
//! are unit-tested on the host (`cargo test`) apart from the register access in `lan9118.rs`.
//!
//! Transmit: two command words, then the frame as little-endian 32-bit words, the last one padded with
//! zeros. Command A carries the buffer's length and the first/last-segment flags (one buffer per frame
//! here, no start offset, 4-byte end alignment); command B carries a tag and the frame's length.
//!
//! Receive: one status word per frame in the RX status FIFO (length including the 4-byte frame check
//! sequence, error flags), then `ceil(length / 4)` little-endian data words in the RX data FIFO. Every
//! word of a frame is read even when the frame is dropped, so the FIFO stays aligned on frame
//! boundaries.

/// The largest frame the driver moves, without the frame check sequence (the MTU of embassy-net's
/// Ethernet medium).
pub const MAX_FRAME: usize = 1514;
/// The smallest frame: an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// The frame check sequence the chip appends to received frames (and reports in the status length).
pub const FCS_LEN: usize = 4;

/// TX command A: this buffer starts a frame.
pub const TX_A_FIRST: u32 = 1 << 13;
/// TX command A: this buffer ends a frame.
pub const TX_A_LAST: u32 = 1 << 12;
/// TX command A / B: the 11-bit length fields.
const LEN_MASK: u32 = 0x7FF;

/// RX status: the frame failed the address filter (only seen in receive-all mode).
pub const RX_FILTER_FAIL: u32 = 1 << 30;
/// RX status: error summary (CRC, too long, runt, collision, watchdog, MII error).
pub const RX_ERROR: u32 = 1 << 15;
/// RX status: the length field (bits 29:16), frame check sequence included.
const RX_LEN_SHIFT: u32 = 16;
const RX_LEN_MASK: u32 = 0x3FFF;

/// TX status: error summary (the frame was not sent).
const TX_ERROR: u32 = 1 << 15;

/// Why a frame cannot be sent or is not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than an Ethernet header.
    TooShort,
    /// Longer than [`MAX_FRAME`] or than the receive buffer.
    TooLong,
    /// The chip flagged a receive error (bad CRC, collision, ...).
    Receive,
    /// The frame failed the address filter.
    Filtered,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::TooShort => "frame shorter than an Ethernet header",
            Self::TooLong => "frame longer than the buffer",
            Self::Receive => "receive error flagged by the chip",
            Self::Filtered => "frame failed the address filter",
        })
    }
}

impl core::error::Error for FrameError {}

/// The 32-bit words a buffer of `len` bytes takes in a FIFO.
pub const fn words_for(len: usize) -> usize {
    len.div_ceil(4)
}

/// The two command words that precede a frame of `len` bytes in the TX data FIFO.
pub fn tx_commands(len: usize, tag: u16) -> Result<[u32; 2], FrameError> {
    if len < MIN_FRAME {
        return Err(FrameError::TooShort);
    }
    if len > MAX_FRAME {
        return Err(FrameError::TooLong);
    }
    // `len` <= 1514 fits the 11-bit fields.
    let len = len as u32 & LEN_MASK;
    Ok([TX_A_FIRST | TX_A_LAST | len, (u32::from(tag) << 16) | len])
}

/// The frame as TX data words: little-endian, the last word padded with zeros.
pub fn tx_words(frame: &[u8]) -> impl Iterator<Item = u32> + '_ {
    frame.chunks(4).map(|chunk| {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        u32::from_le_bytes(word)
    })
}

/// The FIFO space, in bytes, a frame of `len` bytes needs: its two command words and its data words.
pub const fn tx_space(len: usize) -> usize {
    (2 + words_for(len)) * 4
}

/// What to do with the frame an RX status word announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxFrame {
    /// Data words to read from the RX data FIFO (always all of them, delivered or not).
    pub words: usize,
    /// `Ok(len)`: deliver the first `len` bytes (the frame without its check sequence);
    /// `Err(why)`: read the words and drop them.
    pub verdict: Result<usize, FrameError>,
}

/// Reads an RX status word, for a receive buffer of `capacity` bytes.
pub fn rx_frame(status: u32, capacity: usize) -> RxFrame {
    let total = ((status >> RX_LEN_SHIFT) & RX_LEN_MASK) as usize;
    let words = words_for(total);
    let verdict = if status & RX_ERROR != 0 {
        Err(FrameError::Receive)
    } else if status & RX_FILTER_FAIL != 0 {
        Err(FrameError::Filtered)
    } else if total < MIN_FRAME + FCS_LEN {
        Err(FrameError::TooShort)
    } else if total - FCS_LEN > capacity.min(MAX_FRAME) {
        Err(FrameError::TooLong)
    } else {
        Ok(total - FCS_LEN)
    };
    RxFrame { words, verdict }
}

/// Stores RX data word number `index` of a frame of `len` bytes into `dst`: its bytes below `len`
/// (the rest are the check sequence or padding). Words past the frame store nothing.
pub fn rx_store(dst: &mut [u8], len: usize, index: usize, word: u32) {
    let start = index.saturating_mul(4);
    let end = start.saturating_add(4).min(len).min(dst.len());
    if let Some(out) = dst.get_mut(start..end) {
        let bytes = word.to_le_bytes();
        out.copy_from_slice(&bytes[..out.len()]);
    }
}

/// `RX_FIFO_INF`: the number of status words waiting (bits 23:16).
pub const fn rx_status_used(fifo_inf: u32) -> u32 {
    (fifo_inf >> 16) & 0xFF
}

/// `TX_FIFO_INF`: free bytes in the TX data FIFO (bits 15:0).
pub const fn tx_data_free(fifo_inf: u32) -> usize {
    (fifo_inf & 0xFFFF) as usize
}

/// `TX_FIFO_INF`: the number of TX status words waiting (bits 23:16).
pub const fn tx_status_used(fifo_inf: u32) -> u32 {
    (fifo_inf >> 16) & 0xFF
}

/// Whether a TX status word reports a frame that was not sent.
pub const fn tx_failed(status: u32) -> bool {
    status & TX_ERROR != 0
}

/// The MAC address as the `ADDRL` (bytes 0-3) and `ADDRH` (bytes 4-5) MAC registers hold it.
pub const fn mac_registers(mac: [u8; 6]) -> (u32, u32) {
    let low = u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
    let high = u32::from_le_bytes([mac[4], mac[5], 0, 0]);
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A received frame as the chip presents it: the status word and the data words (frame + FCS).
    fn as_received(frame: &[u8], fcs: [u8; 4]) -> (u32, Vec<u32>) {
        let mut bytes = frame.to_vec();
        bytes.extend_from_slice(&fcs);
        let status = ((bytes.len() as u32) << 16) | if frame[0] == 0xFF { 1 << 13 } else { 0 };
        (status, tx_words(&bytes).collect())
    }

    fn frame(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn word_counts_round_up() {
        assert_eq!(words_for(0), 0);
        assert_eq!(words_for(1), 1);
        assert_eq!(words_for(4), 1);
        assert_eq!(words_for(5), 2);
        assert_eq!(words_for(MAX_FRAME + FCS_LEN), 380);
        assert_eq!(tx_space(60), 8 + 60);
        assert_eq!(tx_space(61), 8 + 64);
    }

    #[test]
    fn tx_commands_carry_length_flags_and_tag() {
        let [a, b] = tx_commands(60, 0xBEEF).unwrap();
        assert_eq!(a, TX_A_FIRST | TX_A_LAST | 60);
        // No interrupt on completion (bit 31): completion is read from the TX status FIFO.
        assert_eq!(a & (1 << 31), 0);
        assert_eq!(b, 0xBEEF_0000 | 60);
        let [a, b] = tx_commands(MAX_FRAME, 1).unwrap();
        assert_eq!(a & LEN_MASK, 1514);
        assert_eq!(b & LEN_MASK, 1514);
        assert_eq!(tx_commands(13, 0), Err(FrameError::TooShort));
        assert_eq!(tx_commands(0, 0), Err(FrameError::TooShort));
        assert_eq!(tx_commands(MAX_FRAME + 1, 0), Err(FrameError::TooLong));
        // A length that would spill over the 11-bit field is refused, not truncated.
        assert_eq!(tx_commands(2048 + 60, 0), Err(FrameError::TooLong));
    }

    #[test]
    fn tx_words_are_little_endian_and_zero_padded() {
        let words: Vec<u32> = tx_words(&[1, 2, 3, 4, 5, 6]).collect();
        assert_eq!(words, [0x0403_0201, 0x0000_0605]);
        assert_eq!(tx_words(&[]).count(), 0);
        assert_eq!(tx_words(&frame(61)).count(), 16);
    }

    #[test]
    fn a_frame_survives_the_fifos_at_every_length_alignment() {
        for len in [MIN_FRAME, 15, 16, 17, 60, 61, 62, 63, 64, 1513, MAX_FRAME] {
            let sent = frame(len);
            let (status, words) = as_received(&sent, [0xDE, 0xAD, 0xBE, 0xEF]);
            let rx = rx_frame(status, MAX_FRAME);
            assert_eq!(rx.words, words.len(), "len {len}");
            assert_eq!(rx.verdict, Ok(len), "len {len}");
            let mut buf = [0xAAu8; MAX_FRAME];
            for (i, w) in words.iter().enumerate() {
                rx_store(&mut buf, len, i, *w);
            }
            assert_eq!(&buf[..len], &sent[..], "len {len}");
            // Nothing past the frame is touched: the FCS is not copied into the buffer.
            assert!(buf[len..].iter().all(|b| *b == 0xAA), "len {len}");
        }
    }

    #[test]
    fn rx_errors_and_bad_lengths_are_dropped_but_their_words_still_read() {
        let ok = (64u32 + 4) << 16;
        assert_eq!(rx_frame(ok, MAX_FRAME), RxFrame { words: 17, verdict: Ok(64) });
        assert_eq!(rx_frame(ok | RX_ERROR | 0x2, MAX_FRAME), RxFrame { words: 17, verdict: Err(FrameError::Receive) });
        assert_eq!(rx_frame(ok | RX_FILTER_FAIL, MAX_FRAME).verdict, Err(FrameError::Filtered));
        // A runt: less than a header plus the FCS.
        assert_eq!(rx_frame(17 << 16, MAX_FRAME), RxFrame { words: 5, verdict: Err(FrameError::TooShort) });
        assert_eq!(rx_frame(0, MAX_FRAME), RxFrame { words: 0, verdict: Err(FrameError::TooShort) });
        // Longer than the buffer, or than an Ethernet frame, whatever the buffer.
        assert_eq!(rx_frame(ok, 63), RxFrame { words: 17, verdict: Err(FrameError::TooLong) });
        let jumbo = ((MAX_FRAME as u32) + 1 + 4) << 16;
        assert_eq!(rx_frame(jumbo, 9000).verdict, Err(FrameError::TooLong));
        // The largest length the 14-bit field can say still gives a bounded word count.
        assert_eq!(rx_frame(u32::MAX, MAX_FRAME).words, 4096);
    }

    #[test]
    fn rx_store_stays_inside_the_buffer() {
        let mut small = [0u8; 5];
        rx_store(&mut small, 64, 0, 0x0403_0201);
        rx_store(&mut small, 64, 1, 0x0807_0605);
        rx_store(&mut small, 64, 1000, 0xFFFF_FFFF);
        rx_store(&mut small, 64, usize::MAX, 0xFFFF_FFFF);
        assert_eq!(small, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn fifo_information_fields() {
        assert_eq!(rx_status_used(0x0003_0040), 3);
        assert_eq!(rx_status_used(0xFF00_FFFF), 0);
        assert_eq!(tx_data_free(0x0002_1200), 0x1200);
        assert_eq!(tx_status_used(0x0002_1200), 2);
    }

    #[test]
    fn tx_status_errors() {
        assert!(!tx_failed(0x0007_0000));
        assert!(tx_failed(0x0007_8000));
        assert!(tx_failed(0x0000_8001));
    }

    #[test]
    fn mac_address_register_layout() {
        assert_eq!(mac_registers([0x02, 0x00, 0x00, 0x76, 0x70, 0x02]), (0x7600_0002, 0x0000_0270));
    }
}
