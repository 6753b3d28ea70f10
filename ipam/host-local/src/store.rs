//! Where leases live. The allocator and plugin logic see only [`LeaseStore`]; the disk store is
//! the one implementation that touches files, and [`MemoryStore`] serves the unit tests.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// The key the spec gives an attachment: container id + interface name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

impl Attachment {
    pub fn new(container_id: &str, ifname: &str) -> Attachment {
        Attachment {
            container_id: container_id.trim().to_string(),
            ifname: ifname.to_string(),
        }
    }

    /// The lease file content the reference writes and matches: `<id>\r\n<ifname>`.
    pub fn lease_content(&self) -> String {
        format!("{}\r\n{}", self.container_id, self.ifname)
    }
}

impl fmt::Display for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.container_id, self.ifname)
    }
}

/// Who holds a lease, as read back from its file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Attachment(Attachment),
    /// Files written before v0.8.0 of the reference hold only the container id.
    Legacy(String),
    /// Empty or unreadable content (a crash mid-write): matches nobody.
    Unknown,
}

impl Owner {
    pub fn parse(content: &str) -> Owner {
        let content = content.trim();
        if content.is_empty() {
            return Owner::Unknown;
        }
        match content.split_once("\r\n") {
            Some((id, ifname)) => Owner::Attachment(Attachment {
                container_id: id.to_string(),
                ifname: ifname.to_string(),
            }),
            None => Owner::Legacy(content.to_string()),
        }
    }

    /// Whether this lease counts as `a`'s when looking for duplicates (legacy leases count).
    pub fn belongs_to(&self, a: &Attachment) -> bool {
        match self {
            Owner::Attachment(o) => o == a,
            Owner::Legacy(id) => *id == a.container_id,
            Owner::Unknown => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: IpAddr,
    pub owner: Owner,
}

#[derive(Debug)]
pub enum StoreError {
    /// The lock could not be taken in time: another process holds it.
    LockTimeout(String),
    Io(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::LockTimeout(m) | StoreError::Io(m) => f.write_str(m),
        }
    }
}

pub trait LeaseStore {
    /// Claims `ip` for `owner` and records it as range set `set_index`'s last reservation.
    /// `Ok(false)` when the address is already held.
    fn reserve(
        &mut self,
        ip: IpAddr,
        owner: &Attachment,
        set_index: usize,
    ) -> Result<bool, StoreError>;
    fn last_reserved(&self, set_index: usize) -> Result<Option<IpAddr>, StoreError>;
    /// Addresses held by `a`, including legacy id-only leases of its container.
    fn leases_of(&mut self, a: &Attachment) -> Result<Vec<IpAddr>, StoreError>;
    /// Releases `ip` if `a` holds it (rollback of a failed ADD).
    fn release(&mut self, ip: IpAddr, a: &Attachment) -> Result<(), StoreError>;
    /// Releases every lease of `a`; legacy id-only leases only if `a` holds no current-format one.
    fn release_attachment(&mut self, a: &Attachment) -> Result<Vec<IpAddr>, StoreError>;
    /// Every lease, read from the source of truth.
    fn leases(&mut self) -> Result<Vec<Lease>, StoreError>;
    /// Releases `lease` whatever its owner (GC).
    fn release_lease(&mut self, lease: &Lease) -> Result<(), StoreError>;
}

/// An in-memory store with the same semantics, for tests of the allocator and plugin logic.
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub leases: BTreeMap<IpAddr, Owner>,
    pub last: BTreeMap<usize, IpAddr>,
}

impl LeaseStore for MemoryStore {
    fn reserve(
        &mut self,
        ip: IpAddr,
        owner: &Attachment,
        set_index: usize,
    ) -> Result<bool, StoreError> {
        if self.leases.contains_key(&ip) {
            return Ok(false);
        }
        self.leases.insert(ip, Owner::Attachment(owner.clone()));
        self.last.insert(set_index, ip);
        Ok(true)
    }

    fn last_reserved(&self, set_index: usize) -> Result<Option<IpAddr>, StoreError> {
        Ok(self.last.get(&set_index).copied())
    }

    fn leases_of(&mut self, a: &Attachment) -> Result<Vec<IpAddr>, StoreError> {
        Ok(self
            .leases
            .iter()
            .filter(|(_, o)| o.belongs_to(a))
            .map(|(ip, _)| *ip)
            .collect())
    }

    fn release(&mut self, ip: IpAddr, a: &Attachment) -> Result<(), StoreError> {
        if self.leases.get(&ip).is_some_and(|o| o.belongs_to(a)) {
            self.leases.remove(&ip);
        }
        Ok(())
    }

    fn release_attachment(&mut self, a: &Attachment) -> Result<Vec<IpAddr>, StoreError> {
        let current = Owner::Attachment(a.clone());
        let legacy = Owner::Legacy(a.container_id.clone());
        let mut gone: Vec<IpAddr> = self
            .leases
            .iter()
            .filter(|(_, o)| **o == current)
            .map(|(ip, _)| *ip)
            .collect();
        if gone.is_empty() {
            gone = self
                .leases
                .iter()
                .filter(|(_, o)| **o == legacy)
                .map(|(ip, _)| *ip)
                .collect();
        }
        for ip in &gone {
            self.leases.remove(ip);
        }
        Ok(gone)
    }

    fn leases(&mut self) -> Result<Vec<Lease>, StoreError> {
        Ok(self
            .leases
            .iter()
            .map(|(ip, owner)| Lease {
                ip: *ip,
                owner: owner.clone(),
            })
            .collect())
    }

    fn release_lease(&mut self, lease: &Lease) -> Result<(), StoreError> {
        self.leases.remove(&lease.ip);
        Ok(())
    }
}
