//! Sources: who an attempt or a request is charged to, as bytes the provider hashes with its key.
//!
//! The HTTP binding passes the peer address. IPv4 addresses are taken whole; IPv6 addresses are
//! grouped by their /64 prefix, the smallest block a host is usually given (RFC 6177), so one machine
//! cannot spread itself over many sources by changing its interface identifier.

use core::net::IpAddr;

/// The source bytes of a peer address: 4 bytes for IPv4 (and IPv4-mapped IPv6), the /64 prefix for
/// IPv6. The buffer is returned whole with the used length.
pub fn of_ip(ip: IpAddr) -> ([u8; 8], usize) {
    let mut out = [0u8; 8];
    match ip {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            (out, 4)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => of_ip(IpAddr::V4(v4)),
            None => {
                out.copy_from_slice(&v6.octets()[..8]);
                (out, 8)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_grouped_by_64_and_ipv4_is_whole() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(of_ip(a), of_ip(b));
        assert_ne!(of_ip(a), of_ip(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(of_ip(v4), of_ip(mapped));
        assert_eq!(of_ip(v4).1, 4);
        assert_ne!(of_ip(v4), of_ip("192.0.2.8".parse().unwrap()));
    }
}
