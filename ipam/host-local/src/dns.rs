//! `resolvConf`: a resolv.conf file read into the result's `dns`, as the reference reads it
//! (`search` and `options` accumulate across lines, `domain` last wins).

use cni_protocol::result::Dns;
use cni_protocol::CniError;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub fn parse(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            continue;
        }
        let values = fields[1..].iter().map(|s| s.to_string());
        match fields[0] {
            "nameserver" => dns.nameservers.push(fields[1].to_string()),
            "domain" => dns.domain = fields[1].to_string(),
            "search" => dns.search.extend(values),
            "options" => dns.options.extend(values),
            _ => {}
        }
    }
    dns
}

/// The most of a resolv.conf we read; glibc itself only looks at the first few entries.
const MAX_RESOLV_CONF_BYTES: u64 = 1024 * 1024;

/// Reads `path`, which must be a regular file: a FIFO, `/dev/zero` or a directory named by a
/// hostile config is refused instead of hanging or exhausting memory.
pub fn read(path: &Path) -> Result<Dns, CniError> {
    let refuse = |e: &dyn std::fmt::Display| {
        CniError::invalid_config(format!("cannot read resolvConf {}: {e}", path.display()))
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        // O_NONBLOCK: opening a FIFO must not wait for a writer.
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| refuse(&e))?;
    let meta = file.metadata().map_err(|e| refuse(&e))?;
    if !meta.is_file() {
        return Err(refuse(&"not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_RESOLV_CONF_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(&e))?;
    if bytes.len() as u64 > MAX_RESOLV_CONF_BYTES {
        return Err(refuse(&format_args!(
            "larger than {MAX_RESOLV_CONF_BYTES} bytes"
        )));
    }
    Ok(parse(&String::from_utf8_lossy(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_field_and_skips_comments() {
        let dns = parse(
            "# c\n; c\nnameserver 10.0.0.1\nnameserver 10.0.0.2\ndomain a.com\ndomain b.com\n\
             search x.com y.com\nsearch z.com\noptions ndots:5\noptions rotate attempts:2\nbogus\n",
        );
        assert_eq!(dns.nameservers, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(dns.domain, "b.com");
        assert_eq!(dns.search, ["x.com", "y.com", "z.com"]);
        assert_eq!(dns.options, ["ndots:5", "rotate", "attempts:2"]);
    }
}
