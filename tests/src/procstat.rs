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
/// SYN or handshake ACK was dropped) and `ListenDrops`.
pub fn tcp_ext() -> anyhow::Result<HashMap<String, u64>> {
    let text = std::fs::read_to_string("/proc/net/netstat")?;
    let mut rows = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = rows
        .next()
        .context("no TcpExt header in /proc/net/netstat")?;
    let values = rows
        .next()
        .context("no TcpExt values in /proc/net/netstat")?;
    Ok(names
        .split_whitespace()
        .skip(1)
        .zip(values.split_whitespace().skip(1))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect())
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
