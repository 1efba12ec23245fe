//! Which addresses have a place on the map.
//!
//! Private, loopback, link-local, shared (CGNAT), documentation,
//! benchmarking, multicast and reserved addresses say nothing about where
//! a user is, so they are never looked up: the event's geo fields stay
//! null. The lists follow the IANA special-purpose address registries.
//!
//! IPv6 is judged by exclusion from global unicast (`2000::/3`): anything
//! outside it is not public, except IPv4-mapped addresses
//! (`::ffff:a.b.c.d`), which are judged, and looked up, as the IPv4
//! address they carry. 6to4 (`2002::/16`) is judged by its embedded IPv4
//! address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 networks that are not public, as (network, prefix length).
const IPV4_NOT_PUBLIC: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (CGNAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // deprecated 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, and broadcast
];

/// Networks inside `2000::/3` that are not public, as (network, prefix
/// length).
const IPV6_GLOBAL_NOT_PUBLIC: &[(Ipv6Addr, u8)] = &[
    // IETF protocol assignments (Teredo, benchmarking, ORCHID, …).
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    // Documentation.
    (Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
];

/// The address to look up for `ip`, or `None` when it is not public.
///
/// An IPv4-mapped IPv6 address becomes its IPv4 address.
pub(crate) fn public_address(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4).then_some(ip),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4).then_some(IpAddr::V4(v4));
            }
            is_public_v6(v6).then_some(ip)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !IPV4_NOT_PUBLIC
        .iter()
        .any(|&(net, len)| prefix_matches_v4(bits, u32::from(net), len))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    let global_unicast = bits >> 125 == 0b001;
    if !global_unicast {
        return false;
    }
    if IPV6_GLOBAL_NOT_PUBLIC
        .iter()
        .any(|&(net, len)| prefix_matches_v6(bits, u128::from(net), len))
    {
        return false;
    }
    if ip.segments()[0] == 0x2002 {
        // 6to4: the next 32 bits are the site's IPv4 address.
        let embedded = Ipv4Addr::from((bits >> 80) as u32);
        return is_public_v4(embedded);
    }
    true
}

fn prefix_matches_v4(bits: u32, net: u32, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    bits & mask == net & mask
}

fn prefix_matches_v6(bits: u128, net: u128, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    bits & mask == net & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(text: &str) -> Option<IpAddr> {
        public_address(text.parse().unwrap())
    }

    #[test]
    fn public_ipv4_is_kept() {
        for ip in [
            "81.2.69.142",
            "8.8.8.8",
            "216.160.83.56",
            "1.1.1.1",
            "100.128.0.1",
        ] {
            assert_eq!(public(ip), Some(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn special_ipv4_is_not_public() {
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert_eq!(public(ip), None, "{ip}");
        }
    }

    #[test]
    fn neighbours_of_special_ipv4_ranges_are_public() {
        for ip in [
            "9.255.255.255",
            "11.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "198.20.0.0",
        ] {
            assert!(public(ip).is_some(), "{ip}");
        }
    }

    #[test]
    fn public_ipv6_is_kept() {
        for ip in [
            "2a02:ff0::1",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
        ] {
            assert_eq!(public(ip), Some(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn special_ipv6_is_not_public() {
        for ip in [
            "::",
            "::1",
            "::10.0.0.1",
            "64:ff9b::808:808",
            "100::1",
            "2001::1",
            "2001:2::1",
            "2001:db8::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert_eq!(public(ip), None, "{ip}");
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_is_judged_and_looked_up_as_ipv4() {
        assert_eq!(
            public("::ffff:81.2.69.142"),
            Some("81.2.69.142".parse().unwrap())
        );
        assert_eq!(public("::ffff:192.168.0.1"), None);
        assert_eq!(public("::ffff:127.0.0.1"), None);
    }

    #[test]
    fn six_to_four_is_judged_by_its_ipv4() {
        // 2002:5102:458e:: carries 81.2.69.142; 2002:c0a8:0101:: 192.168.1.1.
        assert!(public("2002:5102:458e::1").is_some());
        assert_eq!(public("2002:c0a8:101::1"), None);
    }
}
