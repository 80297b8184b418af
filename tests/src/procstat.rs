//! What the kernel says about a benchmark run, read from /proc: a listening
//! socket's accept-queue depth, the TCP listen-overflow counters, and the
//! CPU time of processes and of the whole machine. The flood benchmark uses
//! them to show where a legitimate client's time went.

use std::collections::HashMap;

use anyhow::Context;

/// Connections waiting in the accept queue of the IPv4 socket listening on
/// `port` (the `rx_queue` column of /proc/net/tcp for a LISTEN row), or
/// `None` when no such socket is found.
///
/// The kernel lists listening sockets first and builds the file as it is
/// read, so this stops at the first other row: under a flood the whole file
/// (every connection and TIME_WAIT) would cost the machine more than the
/// benchmark measures.
pub fn accept_queue(port: u16) -> Option<u64> {
    use std::io::BufRead;
    let file = std::fs::File::open("/proc/net/tcp").ok()?;
    let want = format!(":{port:04X}");
    for line in std::io::BufReader::new(file).lines().skip(1) {
        let line = line.ok()?;
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx_queue:rx_queue ...; st 0A is LISTEN.
        if f.len() < 5 || f[3] != "0A" {
            return None;
        }
        if f[1].ends_with(&want) {
            return u64::from_str_radix(f[4].split_once(':')?.1, 16).ok();
        }
    }
    None
}

/// The kernel's `TcpExt` counters (/proc/net/netstat), e.g.
/// `ListenOverflows` (a connection the accept queue had no room for: its
/// SYN or handshake ACK was dropped) and `ListenDrops`, plus two that are
/// not TCP's: `ConntrackDrop`, packets netfilter's connection tracking
/// dropped because its table was full (the `drop` column of
/// /proc/net/stat/nf_conntrack, summed over CPUs; 0 without conntrack),
/// and `IpOutNotSent`, IP's `OutRequests - OutTransmits` (/proc/net/snmp):
/// packets handed to IP that never left, such as those SYNs.
pub fn tcp_ext() -> anyhow::Result<HashMap<String, u64>> {
    let text = std::fs::read_to_string("/proc/net/netstat")?;
    let mut counters = table_row(&text, "TcpExt:")?;
    let snmp = std::fs::read_to_string("/proc/net/snmp")?;
    let ip = table_row(&snmp, "Ip:")?;
    let not_sent = ip
        .get("OutRequests")
        .unwrap_or(&0)
        .saturating_sub(*ip.get("OutTransmits").unwrap_or(&0));
    counters.insert("IpOutNotSent".into(), not_sent);
    counters.insert("ConntrackDrop".into(), conntrack_drops());
    Ok(counters)
}

/// A `Prefix:` header line and the value line after it, as name → value.
fn table_row(text: &str, prefix: &str) -> anyhow::Result<HashMap<String, u64>> {
    let mut rows = text.lines().filter(|l| l.starts_with(prefix));
    let names = rows.next().with_context(|| format!("no {prefix} header"))?;
    let values = rows.next().with_context(|| format!("no {prefix} values"))?;
    Ok(names
        .split_whitespace()
        .skip(1)
        .zip(values.split_whitespace().skip(1))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect())
}

/// Packets dropped by a full connection-tracking table, over all CPUs.
fn conntrack_drops() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/net/stat/nf_conntrack") else {
        return 0;
    };
    let mut lines = text.lines();
    let Some(col) = lines
        .next()
        .and_then(|h| h.split_whitespace().position(|c| c == "drop"))
    else {
        return 0;
    };
    lines
        .filter_map(|l| l.split_whitespace().nth(col))
        .filter_map(|v| u64::from_str_radix(v, 16).ok())
        .sum()
}

/// Clock ticks per second in /proc's CPU times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds (user + system) a process has used; `None` for this process
/// reads /proc/self.
pub fn cpu_secs(pid: Option<u32>) -> anyhow::Result<f64> {
    let path = pid.map_or("/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(&path)?;
    // Fields after the command name, which may hold spaces, in parentheses.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let ticks: u64 = f.get(11).context("no utime")?.parse::<u64>()?
        + f.get(12).context("no stime")?.parse::<u64>()?;
    Ok(ticks as f64 / TICKS_PER_SEC)
}

/// The machine's CPU seconds so far: (busy, softirq, total), summed over
/// every CPU (/proc/stat). Busy includes softirq, where most of loopback
/// TCP's work is done.
pub fn machine_cpu_secs() -> anyhow::Result<(f64, f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    anyhow::ensure!(v.len() >= 7, "short cpu line in /proc/stat");
    // user nice system idle iowait irq softirq steal …
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    Ok((
        (total - idle) as f64 / TICKS_PER_SEC,
        v[6] as f64 / TICKS_PER_SEC,
        total as f64 / TICKS_PER_SEC,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_shows_its_unaccepted_connections() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(accept_queue(port), Some(0));
        let _a = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _b = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(accept_queue(port), Some(2));
        let _accepted = listener.accept().unwrap();
        assert_eq!(accept_queue(port), Some(1));
    }

    #[test]
    fn counters_and_cpu_times_read() {
        assert!(tcp_ext().unwrap().contains_key("ListenOverflows"));
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {}
        assert!(cpu_secs(None).unwrap() > 0.0);
        let (busy, _, total) = machine_cpu_secs().unwrap();
        assert!(busy > 0.0 && total >= busy);
    }
}
