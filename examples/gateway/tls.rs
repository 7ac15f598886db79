//! HTTPS for the gateway: rustls (ring provider) over the accepted TCP stream.
//!
//! The crate's drivers serve any `embedded-io` stream, so TLS is only a different stream: a
//! [`TlsConn`] is a rustls server connection plus its socket, read and written through
//! `rustls::Stream`. The certificate comes from PEM files (`--tls-cert`, `--tls-key`) or is a
//! development certificate made with rcgen on first start (`--tls`) and kept in the state
//! directory, for `localhost`, `127.0.0.1`, `::1` and the bound address.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use oauth2_devices::http::conn::Transport;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use sha2::{Digest, Sha256};

/// Where the certificate came from: it decides HSTS (only for the operator's own certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--tls-cert` and `--tls-key`.
    Operator,
    /// Generated for development (`--tls`).
    Development,
}

/// A server's TLS set-up.
pub struct Tls {
    pub config: Arc<ServerConfig>,
    pub origin: Origin,
    /// SHA-256 of the certificate (DER), colon-separated hex: what a user compares.
    pub fingerprint: String,
    /// Base64 SHA-256 of the certificate's public key (SubjectPublicKeyInfo): what a browser can be
    /// told to trust (Chromium's `--ignore-certificate-errors-spki-list`), when known.
    pub spki_sha256: Option<String>,
    /// The certificate's PEM file, for clients to trust (`curl --cacert`).
    pub cert_path: Option<PathBuf>,
}

fn server_config(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<ServerConfig, String> {
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate: {e}"))
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Loads the operator's certificate chain and key (PEM).
pub fn from_files(cert: &Path, key: &Path) -> Result<Tls, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let first = chain.first().ok_or_else(|| format!("{}: no certificate", cert.display()))?;
    let fingerprint = fingerprint(first.as_ref());
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    Ok(Tls {
        config: Arc::new(server_config(chain, key)?),
        origin: Origin::Operator,
        fingerprint,
        spki_sha256: None,
        cert_path: Some(cert.to_path_buf()),
    })
}

/// The development certificate: read from `dir` when it is there and names `bound`, else made anew
/// (and written there, the key readable by the owner only). Without a directory it lives in memory.
pub fn development(dir: Option<&Path>, bound: IpAddr) -> Result<Tls, String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if !bound.is_unspecified() && !names.contains(&bound.to_string()) {
        names.push(bound.to_string());
    }
    let files = dir.map(|d| (d.join("tls-dev-cert.pem"), d.join("tls-dev-key.pem"), d.join("tls-dev-names.txt")));
    if let Some((cert, key, listed)) = &files {
        let same_names = std::fs::read_to_string(listed).is_ok_and(|l| l.lines().eq(names.iter().map(String::as_str)));
        if same_names && cert.exists() && key.exists() {
            let key_pem = std::fs::read_to_string(key).map_err(|e| format!("{}: {e}", key.display()))?;
            let pair = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| format!("{}: {e}", key.display()))?;
            let mut tls = from_files(cert, key)?;
            tls.origin = Origin::Development;
            tls.spki_sha256 = Some(spki(&pair));
            return Ok(tls);
        }
    }
    let made = rcgen::generate_simple_self_signed(names.clone()).map_err(|e| format!("TLS: {e}"))?;
    let cert_der = made.cert.der().clone();
    let key_der = PrivateKeyDer::try_from(made.key_pair.serialize_der()).map_err(|e| format!("TLS: {e}"))?;
    let mut cert_path = None;
    if let Some((cert, key, listed)) = &files {
        std::fs::write(cert, made.cert.pem()).map_err(|e| format!("{}: {e}", cert.display()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(key).map_err(|e| format!("{}: {e}", key.display()))?;
        file.write_all(made.key_pair.serialize_pem().as_bytes()).map_err(|e| format!("{}: {e}", key.display()))?;
        std::fs::write(listed, names.join("\n")).map_err(|e| format!("{}: {e}", listed.display()))?;
        cert_path = Some(cert.clone());
    }
    Ok(Tls {
        fingerprint: fingerprint(cert_der.as_ref()),
        spki_sha256: Some(spki(&made.key_pair)),
        config: Arc::new(server_config(vec![cert_der], key_der)?),
        origin: Origin::Development,
        cert_path,
    })
}

fn spki(pair: &rcgen::KeyPair) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(pair.public_key_der()))
}

/// One TLS connection: the rustls state and its socket.
pub struct TlsConn {
    conn: ServerConnection,
    tcp: TcpStream,
}

impl TlsConn {
    /// Runs the handshake within `deadline` of now (a peer that stalls it is dropped like a request
    /// head that never ends).
    pub fn accept(config: &Arc<ServerConfig>, tcp: &TcpStream, deadline: Duration) -> io::Result<TlsConn> {
        let tcp = tcp.try_clone()?;
        let conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        let mut tls = TlsConn { conn, tcp };
        let end = Instant::now() + deadline;
        while tls.conn.is_handshaking() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timeout"));
            }
            tls.tcp.set_read_timeout(Some(left))?;
            tls.tcp.set_write_timeout(Some(left))?;
            match tls.conn.complete_io(&mut tls.tcp) {
                Ok((0, 0)) if tls.conn.is_handshaking() => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed during the TLS handshake"))
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(tls)
    }

    /// Sends `close_notify` (so the peer knows the response was whole) and shuts the write side.
    pub fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.conn.complete_io(&mut self.tcp);
        let _ = self.tcp.shutdown(Shutdown::Write);
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

impl embedded_io::ErrorType for TlsConn {
    type Error = io::Error;
}

/// The library's timed drivers over TLS: the deadlines are set on the socket under the TLS stream.
/// Reads first send what an earlier write left buffered (`rustls::Stream` does), so a response is
/// never held back while the driver waits for the next request.
impl Transport for TlsConn {
    fn read_within(&mut self, buf: &mut [u8], timeout_ms: u64) -> io::Result<Option<usize>> {
        self.tcp.set_read_timeout(Some(Duration::from_millis(timeout_ms.max(1))))?;
        match Read::read(self, buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if timed_out(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_within(&mut self, buf: &[u8], timeout_ms: u64) -> io::Result<Option<usize>> {
        self.tcp.set_write_timeout(Some(Duration::from_millis(timeout_ms.max(1))))?;
        match Write::write(self, buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if timed_out(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.close();
        Ok(())
    }
}

impl Read for TlsConn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match rustls::Stream::new(&mut self.conn, &mut self.tcp).read(buf) {
            // A peer that closes without close_notify ends the stream all the same.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            other => other,
        }
    }
}

impl Write for TlsConn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        rustls::Stream::new(&mut self.conn, &mut self.tcp).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        rustls::Stream::new(&mut self.conn, &mut self.tcp).flush()
    }
}
