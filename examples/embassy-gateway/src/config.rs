//! The one place to configure the gateway: server key, clients, scopes, users, capacities, timeouts and
//! the network settings of each board. Everything else reads these constants.

/// Socket tasks, hence simultaneous HTTP connections. Each has its own TCP and HTTP buffers
/// ([`TCP_RX_LEN`] + [`TCP_TX_LEN`] + `HttpConfig::input_buffer_len()` + [`HTTP_OUTPUT_LEN`] bytes).
/// Keep it in step with the `pool_size` of `server::http_task` (a literal there, by the macro's rules).
pub const SOCKETS: usize = 4;
/// TCP receive window of each socket.
pub const TCP_RX_LEN: usize = 1024;
/// TCP send buffer of each socket.
pub const TCP_TX_LEN: usize = 2048;
/// The response buffer of each connection (the verification page is the largest response).
pub const HTTP_OUTPUT_LEN: usize = oauth2_devices::http::MIN_OUTPUT_LEN;
/// Most bytes of request line and headers (431 above). Browsers send ~600 bytes to the page.
pub const MAX_HEAD: usize = 2048;
/// Most bytes of a request body (413 above).
pub const MAX_BODY: usize = 1024;

/// A request must arrive whole within this many seconds of the accept or of the previous response;
/// an idle or dribbling connection is closed after it (the host build takes `--read-timeout`).
pub const READ_TIMEOUT_SECS: u64 = 10;
/// How long a closing connection is drained after our FIN, so the peer reads our last response
/// rather than a reset caused by its unread input.
pub const LINGER_MS: u64 = 500;

/// Pending grants (device authorization requests in flight).
pub const GRANTS: usize = 16;
/// Token families (approved grants with live tokens).
pub const FAMILIES: usize = 16;
/// Sources tracked by the wrong-user-code budgets.
pub const LIMIT_SOURCES: usize = 16;

/// The scopes clients may ask for.
pub static SCOPES: &[&str] = &["profile", "email", "sensors:read"];
/// The scope `GET /api/me` needs.
pub const ME_SCOPE: &str = "profile";

/// Id of the server key (carried in codes, tokens and snapshots, so keys can be rotated).
pub const SERVER_KEY_ID: u8 = 1;
/// The server key: the HMAC secret behind every code, token and snapshot tag.
///
/// DEMO VALUE, the same in every build. A real device must use 32 secret bytes of its own, provisioned
/// at manufacture (OTP, a protected flash sector, a secure element) and never logged. Changing it
/// invalidates every code and token and every stored snapshot (which then fails its tag and is ignored).
pub const SERVER_KEY: [u8; 32] = *b"embassy-gateway demo key: CHANGE";

/// A registered client.
pub struct ClientSpec {
    /// `client_id`.
    pub id: &'static str,
    /// The name shown on the verification page.
    pub name: &'static str,
    /// `Some(secret)` for a confidential client (stored only as a salted hash at start).
    pub secret: Option<&'static str>,
}

/// The clients: a public TV app and a confidential printer (the same identities as the crate's
/// `gateway` example).
pub static CLIENTS: &[ClientSpec] = &[
    ClientSpec { id: "tv-demo", name: "Demo TV", secret: None },
    ClientSpec { id: "printer-demo", name: "Demo printer", secret: Some("printer-secret") },
];

/// The people who may sign in on the verification page (HTTP Basic; demo: passwords in clear, compared
/// as digests in constant time by the library's `StaticUsers`).
pub static USERS: oauth2_devices::http::StaticUsers<'static> =
    oauth2_devices::http::StaticUsers::new(&[oauth2_devices::http::StaticUser {
        login: "alice",
        password: "wonderland",
        id: 1,
        name: "alice",
    }]);

/// Network settings of the host build (defaults; see `--help`).
#[cfg(feature = "host")]
pub mod net {
    /// The TAP device (created beforehand with `ip tuntap add dev tap-o2d mode tap`); `--tap` or
    /// `O2D_TAP` override it.
    pub const TAP: &str = "tap-o2d";
    /// The gateway's own address on the TAP link (`--addr`).
    pub const ADDRESS: [u8; 4] = [10, 42, 0, 2];
    /// Its prefix length.
    pub const PREFIX: u8 = 24;
    /// The listening port (`--port`).
    pub const PORT: u16 = 8080;
    /// Where the "flash" file lives (`--state`).
    pub const STATE_FILE: &str = "embassy-gateway-state.bin";
    /// The flash file: the old two snapshot slots of 4 KiB each (read once, to migrate them), then the
    /// record store on eight 4 KiB blocks.
    #[cfg(not(feature = "no-oauth"))]
    pub const LAYOUT: crate::persist::Layout =
        crate::persist::Layout { legacy: (0, 2 * 4096), store: (2 * 4096, 8 * 4096) };
    /// Bytes of the flash file.
    pub const FLASH_LEN: usize = 10 * 4096;
    /// The MAC address of the gateway's end of the TAP link (locally administered).
    pub const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x42, 0x00, 0x02];
}

/// Network settings of the Nucleo-F767ZI build.
#[cfg(feature = "stm32")]
pub mod net {
    /// The gateway's address.
    pub const ADDRESS: [u8; 4] = [192, 168, 1, 50];
    /// Its prefix length.
    pub const PREFIX: u8 = 24;
    /// The default route, if any.
    pub const GATEWAY: Option<[u8; 4]> = Some([192, 168, 1, 1]);
    /// The listening port.
    pub const PORT: u16 = 80;
    /// The issuer: `http://` + [`ADDRESS`] (+ `:PORT` unless 80). Keep in step with them.
    pub const ISSUER: &str = "http://192.168.1.50";
    /// The verification page: [`ISSUER`] + `/activate`.
    pub const VERIFICATION_URI: &str = "http://192.168.1.50/activate";
    /// The MAC address (locally administered; use the board's unique id or an OUI of your own).
    pub const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x76, 0x70, 0x01];
    /// The SNTP server that sets the clock (a LAN's router usually answers on port 123), or `None`.
    pub const SNTP_SERVER: Option<core::net::SocketAddr> =
        Some(core::net::SocketAddr::V4(core::net::SocketAddrV4::new(core::net::Ipv4Addr::new(192, 168, 1, 1), 123)));
    /// Where the state lives, as offsets from the start of flash, in the dual-bank layout (option bit
    /// nDBANK cleared; see README.md): the program in bank 1 (`memory-stm32.x`: 1 MiB), the record store
    /// in bank 2 on its sectors 5 to 7 (sectors 17 to 19, 3 × 128 KiB), so an erase there stalls no
    /// instruction fetch. The old two-slot snapshots of the single-bank firmware were at 0x18_0000 (its
    /// sectors 10 and 11, two 256 KiB), now bank 2's sectors 8 to 11: read once, to migrate them.
    #[cfg(not(feature = "no-oauth"))]
    pub const LAYOUT: crate::persist::Layout =
        crate::persist::Layout { legacy: (0x0018_0000, 0x0008_0000), store: (0x0012_0000, 0x0006_0000) };
}

/// Network settings of the QEMU mps2-an386 build: QEMU's user-mode network (`-nic user,restrict=on`)
/// gives the guest its usual addresses, and forwards a port of the host's loopback to [`PORT`].
#[cfg(feature = "mps2")]
pub mod net {
    /// The guest's address on QEMU's user-mode network.
    pub const ADDRESS: [u8; 4] = [10, 0, 2, 15];
    /// Its prefix length.
    pub const PREFIX: u8 = 24;
    /// QEMU's side of that network.
    pub const GATEWAY: Option<[u8; 4]> = Some([10, 0, 2, 2]);
    /// The listening port inside the guest (QEMU forwards `127.0.0.1:8080` of the host to it).
    pub const PORT: u16 = 80;
    /// The issuer as clients see it, through the forwarded port (`--issuer`; `runner.sh` passes the
    /// port it forwards).
    pub const ISSUER: &str = "http://127.0.0.1:8080";
    /// The MAC address (locally administered).
    pub const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x76, 0x70, 0x02];
    /// The host file holding the board's flash (`--state`), relative to QEMU's working directory.
    pub const STATE_FILE: &str = "embassy-gateway-mps2.bin";
    /// The flash: the old two snapshot slots of one 4 KiB erase block each (read once, to migrate
    /// them), then the record store on eight 4 KiB blocks.
    #[cfg(not(feature = "no-oauth"))]
    pub const LAYOUT: crate::persist::Layout =
        crate::persist::Layout { legacy: (0, 2 * 4096), store: (2 * 4096, 8 * 4096) };
    /// Bytes of the flash file.
    pub const FLASH_LEN: u32 = 10 * 4096;
}
