//! What the emulated board borrows from the machine running QEMU, through semihosting (the `semihosting`
//! crate): its wall clock (standing in for an RTC), its random device (the board has no TRNG), the
//! firmware's command line (`-append`), and its standard error for the log.

use core::fmt::Write as _;

use semihosting::io::Write as _;

/// Seconds since the Unix epoch on the host, or `None` if the host does not answer.
pub fn unix_time() -> Option<u64> {
    semihosting::sys::arm_compat::sys_time().ok().map(|t| t as u64)
}

/// 32 bytes from the host's `/dev/urandom`: the board has no random number generator of its own.
pub fn seed() -> Result<[u8; 32], semihosting::io::Error> {
    let mut seed = [0u8; 32];
    semihosting::experimental::random::fill_bytes(&mut seed)?;
    Ok(seed)
}

/// Stops the emulator with `code` (QEMU exits with it).
pub fn exit(code: i32) -> ! {
    semihosting::process::exit(code)
}

/// The log: one line per record on the host's standard error, with the uptime.
struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ms = embassy_time::Instant::now().as_millis();
        let mut line = heapless::String::<256>::new();
        // A record longer than the line is cut; the line still ends with a newline.
        let _ = write!(line, "{:>6}.{:03} {:<5} {}", ms / 1000, ms % 1000, record.level(), record.args());
        while line.push('\n').is_err() {
            line.pop();
        }
        if let Ok(mut err) = semihosting::io::stderr() {
            let _ = err.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Installs the log at `level`.
pub fn init_log(level: log::LevelFilter) {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// The longest `--issuer` and `--state` values.
pub const MAX_ARG: usize = 96;

/// The firmware's options, from QEMU's `-append` (see [`Options::USAGE`]).
pub struct Options {
    /// The URL clients reach the gateway at (through QEMU's port forwarding).
    pub issuer: heapless::String<MAX_ARG>,
    /// The host file holding the flash (a NUL-terminated path for semihosting).
    pub state: heapless::Vec<u8, { MAX_ARG + 1 }>,
    /// See `config::READ_TIMEOUT_SECS`.
    pub read_timeout: u64,
    /// The device-code polling interval, if not the provider's default.
    pub interval: Option<u16>,
    /// The log level.
    pub log: log::LevelFilter,
}

impl Options {
    /// What `-append` takes.
    pub const USAGE: &'static str = "options (QEMU -append): [--issuer URL] [--state FILE] [--read-timeout SECS] \
        [--interval SECS] [--log error|warn|info|debug]";

    /// Reads the command line; `Err` explains the first bad argument.
    pub fn parse(issuer: &str, state: &str, read_timeout: u64) -> Result<Self, OptionError> {
        let mut o = Options {
            issuer: heapless::String::new(),
            state: heapless::Vec::new(),
            read_timeout,
            interval: None,
            log: log::LevelFilter::Info,
        };
        set_str(&mut o.issuer, issuer)?;
        set_path(&mut o.state, state)?;
        let args = semihosting::experimental::env::args::<512>()
            .map_err(|_| OptionError::new("-append", "cannot read the command line"))?;
        let mut args = (&args).map(|a| a.unwrap_or(""));
        let _program = args.next();
        while let Some(flag) = args.next() {
            if flag.is_empty() {
                continue;
            }
            let value = args.next().ok_or_else(|| OptionError::new(flag, "needs a value"))?;
            match flag {
                "--issuer" => set_str(&mut o.issuer, value)?,
                "--state" => set_path(&mut o.state, value)?,
                "--read-timeout" => {
                    o.read_timeout = value
                        .parse::<u64>()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| OptionError::new(flag, "not seconds"))?
                }
                "--interval" => {
                    o.interval = Some(
                        value.parse().ok().filter(|s| *s > 0).ok_or_else(|| OptionError::new(flag, "not seconds"))?,
                    )
                }
                "--log" => o.log = value.parse().map_err(|_| OptionError::new(flag, "not a log level"))?,
                _ => return Err(OptionError::new(flag, "unknown option")),
            }
        }
        Ok(o)
    }

    /// The flash file's path, as text (for the log).
    pub fn state_path(&self) -> &str {
        core::str::from_utf8(self.state.strip_suffix(&[0]).unwrap_or(&self.state)).unwrap_or("?")
    }
}

/// A bad command-line argument.
#[derive(Debug)]
pub struct OptionError {
    /// The argument (its first 32 bytes).
    pub arg: heapless::String<32>,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl OptionError {
    fn new(arg: &str, problem: &'static str) -> Self {
        let mut s = heapless::String::new();
        for c in arg.chars() {
            if s.push(c).is_err() {
                break;
            }
        }
        Self { arg: s, problem }
    }
}

impl core::fmt::Display for OptionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.arg, self.problem)
    }
}

impl core::error::Error for OptionError {}

fn set_str(dst: &mut heapless::String<MAX_ARG>, value: &str) -> Result<(), OptionError> {
    dst.clear();
    dst.push_str(value).map_err(|_| OptionError::new(value, "too long"))
}

fn set_path(dst: &mut heapless::Vec<u8, { MAX_ARG + 1 }>, value: &str) -> Result<(), OptionError> {
    if value.is_empty() || value.bytes().any(|b| b == 0) {
        return Err(OptionError::new(value, "not a file name"));
    }
    dst.clear();
    let fits = dst.extend_from_slice(value.as_bytes()).is_ok() && dst.push(0).is_ok();
    if fits {
        Ok(())
    } else {
        Err(OptionError::new(value, "too long"))
    }
}
