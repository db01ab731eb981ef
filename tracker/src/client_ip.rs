//! The client's address: the socket's peer, or what a trusted reverse proxy says it is.

use std::net::IpAddr;

use ipnet::IpNet;

/// Resolves the client address. `X-Forwarded-For` and `Forwarded` are believed only when the
/// direct peer is a trusted proxy; the chain is walked from the right, skipping trusted hops.
pub fn resolve(peer: IpAddr, headers: &[httparse::Header<'_>], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for header in headers {
        let Ok(value) = std::str::from_utf8(header.value) else {
            continue;
        };
        if header.name.eq_ignore_ascii_case("x-forwarded-for") {
            chain.extend(
                value
                    .split(',')
                    .filter_map(|part| parse_address(part.trim())),
            );
        } else if header.name.eq_ignore_ascii_case("forwarded") {
            chain.extend(forwarded_for(value));
        }
    }
    chain
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// The `for=` addresses of an RFC 7239 `Forwarded` header, in order.
fn forwarded_for(value: &str) -> impl Iterator<Item = IpAddr> + '_ {
    value
        .split(',')
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            key.eq_ignore_ascii_case("for")
                .then(|| parse_address(value.trim_matches('"')))?
        })
}

/// Parses `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]` or `[::1]:80`.
fn parse_address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
        httparse::Header {
            name,
            value: value.as_bytes(),
        }
    }

    #[test]
    fn headers_from_untrusted_peers_are_ignored() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let headers = [header("X-Forwarded-For", "1.2.3.4")];
        assert_eq!(resolve(peer, &headers, &[]), peer);
    }

    #[test]
    fn rightmost_untrusted_hop_is_the_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let headers = [header("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.7")];
        assert_eq!(
            resolve(peer, &headers, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn forwarded_header_with_ports_and_brackets() {
        let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let headers = [header(
            "Forwarded",
            "for=\"[2001:db8::1]:4711\";proto=https",
        )];
        assert_eq!(
            resolve(peer, &headers, &trusted),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        let headers = [header("Forwarded", "for=192.0.2.60:80;by=x")];
        assert_eq!(
            resolve(peer, &headers, &trusted),
            "192.0.2.60".parse::<IpAddr>().unwrap()
        );
    }
}
