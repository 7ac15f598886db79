//! Where the provider's time comes from, and whether it can be trusted: the one notion of a trusted
//! clock that the boards, [`crate::sntp`] and the snapshot restore share.

/// Where the gateway's clock comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSource {
    /// A guess (an RTC that lost power): expiry may be wrong and a snapshot is not restored whole.
    #[cfg_attr(feature = "mps2", allow(dead_code))]
    Untrusted,
    /// The board's own clock (an RTC kept by its battery, the host's clock): trusted.
    #[cfg_attr(feature = "stm32", allow(dead_code))]
    Board,
    /// Set by an SNTP answer: trusted.
    Sntp,
}

impl ClockSource {
    /// For `/status` and the log.
    pub const fn name(self) -> &'static str {
        match self {
            ClockSource::Untrusted => "untrusted",
            ClockSource::Board => "board",
            ClockSource::Sntp => "sntp",
        }
    }

    /// Whether expiry and a restored snapshot can rely on this clock.
    pub const fn trusted(self) -> bool {
        !matches!(self, ClockSource::Untrusted)
    }
}
