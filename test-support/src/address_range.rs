//! The addresses a private engine may use: a `/20` out of `198.18.0.0/15`, the block set aside for testing
//! network devices (RFC 2544), and only one that nothing on this host already routes or holds.
//!
//! The documentation ranges (RFC 5737) are no place for test bridges: on these machines `192.0.2.0/24` is the
//! host's own network and gateway and the package registries answer inside `203.0.113.0/24`, so a bridge there
//! cuts the machine off while the test runs. Before a range is taken, `ip -j route` and `ip -j addr` are read
//! and any range that overlaps one of their IPv4 prefixes is passed over.

use std::fmt;
use std::net::Ipv4Addr;

use anyhow::{bail, Context};

/// The block every private engine's range comes from: 198.18.0.0/15.
const BLOCK: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 0, 0), 15);
/// Each engine's share of the block: a /20 (sixteen /24s — the bridge, a swarm's `docker_gwbridge`, address
/// pools and `--subnet` networks).
const RANGE_PREFIX: u8 = 20;

/// An IPv4 prefix, such as `198.18.16.0/20`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// The prefix with its host bits cleared.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        let prefix = prefix.min(32);
        Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        }
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether the two share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let shorter = mask(self.prefix.min(other.prefix));
        u32::from(self.addr) & shorter == u32::from(other.addr) & shorter
    }

    /// The `index`th `/24` inside this prefix (for a prefix of 24 or longer, only 0 exists).
    pub fn subnet24(&self, index: u32) -> Option<Ipv4Net> {
        let count = 1u32 << 24u8.saturating_sub(self.prefix);
        (index < count)
            .then(|| Ipv4Net::new(Ipv4Addr::from(u32::from(self.addr) + (index << 8)), 24))
    }

    /// The `n`th address of the prefix (`.1` is the gateway a bridge takes).
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + n)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for Ipv4Net {
    type Err = anyhow::Error;

    /// `a.b.c.d/n`, or a bare address (a /32), as `ip -j route` writes its destinations.
    fn from_str(text: &str) -> anyhow::Result<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, prefix.parse().context("a prefix length")?),
            None => (text, 32),
        };
        if prefix > 32 {
            bail!("prefix length {prefix} is over 32");
        }
        Ok(Self::new(addr.parse().context("an IPv4 address")?, prefix))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// The IPv4 prefixes this host routes or holds an address in, read from `ip -j route` and `ip -j addr`.
/// The default route is no prefix of its own (it is "everything else") and is left out.
pub fn host_prefixes() -> anyhow::Result<Vec<Ipv4Net>> {
    let routes = ip_json(&["-j", "-4", "route", "show", "table", "all"])?;
    let addresses = ip_json(&["-j", "-4", "addr"])?;
    Ok(prefixes_in(&routes, &addresses))
}

fn ip_json(args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let output = std::process::Command::new("ip")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .context("running ip (iproute2) to read the host's routes and addresses")?;
    if !output.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("reading `ip {}`", args.join(" ")))
}

/// The prefixes named by `ip -j route` (`dst`) and `ip -j addr` (`addr_info[].local/prefixlen`).
fn prefixes_in(routes: &serde_json::Value, addresses: &serde_json::Value) -> Vec<Ipv4Net> {
    let mut prefixes = Vec::new();
    for route in routes.as_array().into_iter().flatten() {
        let Some(dst) = route.get("dst").and_then(|dst| dst.as_str()) else {
            continue;
        };
        if dst == "default" {
            continue;
        }
        if let Ok(net) = dst.parse::<Ipv4Net>() {
            prefixes.push(net);
        }
    }
    for link in addresses.as_array().into_iter().flatten() {
        for info in link
            .get("addr_info")
            .and_then(|info| info.as_array())
            .into_iter()
            .flatten()
        {
            if info.get("family").and_then(|family| family.as_str()) != Some("inet") {
                continue;
            }
            let local = info.get("local").and_then(|local| local.as_str());
            let prefix = info.get("prefixlen").and_then(|prefix| prefix.as_u64());
            if let (Some(Ok(addr)), Some(prefix)) = (local.map(str::parse::<Ipv4Addr>), prefix) {
                // The address itself and the network it is on.
                prefixes.push(Ipv4Net::new(addr, 32));
                prefixes.push(Ipv4Net::new(
                    addr,
                    u8::try_from(prefix.min(32)).unwrap_or(32),
                ));
            }
        }
    }
    prefixes
}

/// The ranges an engine in `slot` may take, in the order they are tried: the block's /20s, starting at the
/// slot's own and stepping by `slots`, so concurrent slots never try the same range.
fn candidates(slot: usize, slots: usize) -> impl Iterator<Item = Ipv4Net> {
    let (block, block_prefix) = BLOCK;
    let count = 1usize << (RANGE_PREFIX - block_prefix);
    (slot..count).step_by(slots.max(1)).map(move |index| {
        let offset = u32::try_from(index).expect("a small index") << (32 - u32::from(RANGE_PREFIX));
        Ipv4Net::new(Ipv4Addr::from(u32::from(block) + offset), RANGE_PREFIX)
    })
}

/// The first range of `slot` that overlaps none of `taken`.
pub(crate) fn free_range(slot: usize, slots: usize, taken: &[Ipv4Net]) -> anyhow::Result<Ipv4Net> {
    candidates(slot, slots)
        .find(|range| !taken.iter().any(|used| used.overlaps(range)))
        .with_context(|| {
            format!(
                "every /{RANGE_PREFIX} of {}/{} for slot {slot} overlaps a route or address of this host",
                BLOCK.0, BLOCK.1
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    #[test]
    fn prefixes_are_normalised_and_compared() {
        assert_eq!(net("198.18.17.5/20").to_string(), "198.18.16.0/20");
        assert_eq!(net("10.0.0.7").to_string(), "10.0.0.7/32");
        assert!(net("198.18.0.0/15").overlaps(&net("198.19.200.0/24")));
        assert!(net("198.19.200.0/24").overlaps(&net("198.18.0.0/15")));
        assert!(!net("198.18.0.0/20").overlaps(&net("198.18.16.0/20")));
        assert!(!net("192.0.2.0/24").overlaps(&net("198.18.0.0/15")));
        assert!(net("0.0.0.0/0").overlaps(&net("1.2.3.4")));
        assert!("1.2.3.4/33".parse::<Ipv4Net>().is_err());
        assert!("default".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn subnets_and_hosts_stay_inside_the_range() {
        let range = net("198.18.16.0/20");
        assert_eq!(range.subnet24(0).unwrap().to_string(), "198.18.16.0/24");
        assert_eq!(range.subnet24(15).unwrap().to_string(), "198.18.31.0/24");
        assert_eq!(range.subnet24(16), None);
        assert_eq!(range.host(1).to_string(), "198.18.16.1");
    }

    #[test]
    fn every_candidate_lies_in_the_block_and_slots_never_share_one() {
        let block = Ipv4Net::new(BLOCK.0, BLOCK.1);
        let all: Vec<Vec<Ipv4Net>> = (0..3).map(|slot| candidates(slot, 3).collect()).collect();
        for (slot, ranges) in all.iter().enumerate() {
            assert!(!ranges.is_empty());
            for range in ranges {
                assert!(
                    block.overlaps(range) && range.prefix() == RANGE_PREFIX,
                    "{range}"
                );
                for (other, others) in all.iter().enumerate() {
                    if other != slot {
                        assert!(others.iter().all(|o| !o.overlaps(range)), "{range} shared");
                    }
                }
            }
        }
        assert_eq!(all.iter().map(Vec::len).sum::<usize>(), 32);
    }

    #[test]
    fn a_range_the_host_uses_is_passed_over() {
        // What this machine's `ip -j` prints, plus a host route and an address inside the first candidate.
        let routes = serde_json::json!([
            {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
            {"dst": "192.0.2.0/24", "dev": "eth0"},
            {"dst": "198.18.0.9", "dev": "tun0"},
        ]);
        let addresses = serde_json::json!([
            {"ifname": "eth0", "addr_info": [
                {"family": "inet", "local": "192.0.2.2", "prefixlen": 24},
                {"family": "inet6", "local": "fd00::2", "prefixlen": 64},
            ]},
            {"ifname": "vpn", "addr_info": [{"family": "inet", "local": "198.18.48.3", "prefixlen": 22}]},
        ]);
        let taken = prefixes_in(&routes, &addresses);
        assert!(taken.contains(&net("192.0.2.0/24")));
        assert!(
            !taken.iter().any(|t| t.prefix() == 0),
            "the default route is no prefix"
        );
        // Slot 0 tries 198.18.0.0/20 (the host route), then 198.18.48.0/20 (the vpn), then 198.18.96.0/20.
        assert_eq!(
            free_range(0, 3, &taken).unwrap().to_string(),
            "198.18.96.0/20"
        );
        assert_eq!(
            free_range(1, 3, &taken).unwrap().to_string(),
            "198.18.16.0/20"
        );
        let everything = [net("198.18.0.0/15")];
        assert!(free_range(0, 3, &everything).is_err());
    }
}
