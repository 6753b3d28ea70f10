//! The host-local verbs: configuration → allocator → lease store → result.

use crate::allocator::{self, AllocError};
use crate::boot::{Boot, BOOT_ID_PATH};
use crate::config::{load_store_conf, IpamConf, StoreConf};
use crate::disk::DiskStore;
use crate::dns;
use crate::store::{Attachment, LeaseStore, Owner, StoreError};
use cni_protocol::result::IpConfig;
use cni_protocol::{CniError, CniResult, ErrorCode, Plugin, Request};
use ipnetwork::IpNetwork;
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

pub const ABOUT: &str = concat!("CNI host-local plugin v", env!("CARGO_PKG_VERSION"));

pub struct HostLocal;

fn store_error(e: StoreError) -> CniError {
    match e {
        StoreError::LockTimeout(m) => CniError::new(ErrorCode::TryAgainLater, m),
        StoreError::Io(m) => CniError::io(m),
    }
}

fn alloc_error(set_index: usize, e: AllocError) -> CniError {
    let msg = format!("failed to allocate for range {set_index}: {e}");
    match e {
        AllocError::Store(StoreError::LockTimeout(_)) => {
            CniError::new(ErrorCode::TryAgainLater, msg)
        }
        AllocError::Store(StoreError::Io(_)) => CniError::io(msg),
        _ => CniError::internal(msg),
    }
}

/// Opens the network's store under its lock; the first command of a boot first releases the
/// leases of earlier boots (see `boot`).
fn open_store(conf: &StoreConf, req: &Request) -> Result<DiskStore, CniError> {
    open_store_within(conf, req, conf.lock_timeout).map_err(store_error)
}

fn open_store_within(
    conf: &StoreConf,
    req: &Request,
    lock_timeout: Duration,
) -> Result<DiskStore, StoreError> {
    let mut store = DiskStore::open(&conf.data_dir, &req.config.name, lock_timeout)?;
    if conf.release_on_reboot {
        release_leases_of_earlier_boots(&mut store);
    }
    Ok(store)
}

/// Never fails the command: a lease it could not release now is retried by the next command.
fn release_leases_of_earlier_boots(store: &mut DiskStore) {
    let boot = match Boot::current() {
        Ok(boot) => boot,
        Err(e) => {
            cni_protocol::cni_log!(
                "cannot tell the boot from {BOOT_ID_PATH} ({e}): leases of earlier boots are kept"
            );
            return;
        }
    };
    match store.release_leases_of_earlier_boots(&boot) {
        Ok(ips) if ips.is_empty() => {}
        Ok(ips) => {
            let list: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
            cni_protocol::cni_log!(
                "released {} lease(s) written before this boot: {}",
                ips.len(),
                list.join(" ")
            );
        }
        Err(e) => cni_protocol::cni_log!("releasing the leases of earlier boots: {e}"),
    }
}

fn attachment(req: &Request) -> Attachment {
    Attachment::new(&req.invocation.container_id, &req.invocation.ifname)
}

/// Allocates one address per range set, in order; on any failure releases what it took.
fn allocate_all(
    store: &mut dyn LeaseStore,
    conf: &IpamConf,
    owner: &Attachment,
) -> Result<Vec<(IpAddr, usize)>, CniError> {
    let mut requested = conf.requested.clone();
    let mut taken: Vec<(IpAddr, usize)> = Vec::new();
    let mut outcome = Ok(());
    for (i, set) in conf.range_sets.iter().enumerate() {
        let wanted = requested
            .iter()
            .position(|ip| set.contains(*ip))
            .map(|p| requested.remove(p));
        match allocator::allocate(store, i, set, owner, wanted) {
            Ok(ip) => taken.push((ip, i)),
            Err(e) => {
                outcome = Err(alloc_error(i, e));
                break;
            }
        }
    }
    if outcome.is_ok() && !requested.is_empty() {
        let list: Vec<String> = requested.iter().map(IpAddr::to_string).collect();
        outcome = Err(CniError::internal(format!(
            "failed to allocate all requested IPs: {}",
            list.join(" ")
        )));
    }
    if let Err(e) = outcome {
        for (ip, _) in &taken {
            if let Err(release) = store.release(*ip, owner) {
                cni_protocol::cni_log!("rolling back {ip} for {owner}: {release}");
            }
        }
        return Err(e);
    }
    Ok(taken)
}

impl Plugin for HostLocal {
    fn schema(&self) -> &'static cni_protocol::gojson::Node {
        &crate::config::SCHEMA
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let conf = IpamConf::load(
            &req.raw,
            &req.invocation.args,
            &req.version_text,
            req.version,
        )?;
        // Read before anything is reserved, so a bad path costs no lease.
        let dns = conf
            .resolv_conf
            .as_deref()
            .map(dns::read)
            .transpose()?
            .unwrap_or_default();
        let owner = attachment(req);
        let mut store = open_store(&conf.store, req)?;
        let allocation = allocate_all(&mut store, &conf, &owner);
        if let Err(e) = store.commit() {
            // The leases are whole files but ADD fails (e.g. no room for the index): take them
            // back. If that commit fails too, the changed directory no longer matches the saved
            // stamp, so the next command rebuilds the index from the lease files.
            for (ip, _) in allocation.iter().flatten() {
                if let Err(release) = store.release(*ip, &owner) {
                    cni_protocol::cni_log!("rolling back {ip} for {owner}: {release}");
                }
            }
            let _ = store.commit();
            return Err(store_error(e));
        }
        let ips = allocation?
            .into_iter()
            .map(|(ip, i)| {
                let range = conf.range_sets[i]
                    .range_for(ip)
                    .map(|(_, r)| r)
                    .unwrap_or(&conf.range_sets[i].0[0]);
                let address = IpNetwork::new(ip, range.subnet.prefix())
                    .map_err(|e| CniError::internal(e.to_string()))?;
                Ok(IpConfig {
                    address,
                    gateway: Some(range.gateway),
                    interface: None,
                })
            })
            .collect::<Result<Vec<_>, CniError>>()?;
        Ok(CniResult {
            interfaces: Vec::new(),
            ips,
            routes: conf.routes.clone(),
            dns,
        })
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let conf = load_store_conf(&req.raw)?;
        let mut store = open_store(&conf, req)?;
        let released = store.release_attachment(&attachment(req));
        store.commit().map_err(store_error)?;
        released.map(|_| ()).map_err(store_error)
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let conf = IpamConf::load(
            &req.raw,
            &req.invocation.args,
            &req.version_text,
            req.version,
        )?;
        let owner = attachment(req);
        let mut store = open_store(&conf.store, req)?;
        let held = store.leases_of(&owner).map_err(store_error)?;
        store.commit().map_err(store_error)?;
        if held.is_empty() {
            return Err(CniError::internal(format!(
                "host-local: Failed to find address added by container {}",
                owner.container_id
            )));
        }
        // Every address of ours that the runtime believes this attachment has must still be
        // leased to it.
        if let Some(prev) = req.prev_result()? {
            for ip in prev.ips.iter().map(|c| c.address.ip()) {
                if conf.range_sets.iter().any(|s| s.contains(ip)) && !held.contains(&ip) {
                    return Err(CniError::internal(format!(
                        "host-local: {ip} from prevResult is not leased to {owner}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let Some(valid) = req.config.gc_valid_attachments() else {
            cni_protocol::cni_log!("GC without cni.dev/valid-attachments: nothing released");
            return Ok(());
        };
        let valid: HashSet<Attachment> = valid
            .iter()
            .map(|v| Attachment::new(&v.container_id, &v.ifname))
            .collect();
        let valid_ids: HashSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
        let conf = load_store_conf(&req.raw)?;
        let mut store = open_store(&conf, req)?;
        let mut failures = Vec::new();
        for lease in store.leases().map_err(store_error)? {
            let keep = match &lease.owner {
                Owner::Attachment(a) => valid.contains(a),
                Owner::Legacy(id) => valid_ids.contains(id.as_str()),
                Owner::Unknown => false,
            };
            if !keep {
                if let Err(e) = store.release_lease(&lease) {
                    failures.push(format!("{}: {e}", lease.ip));
                }
            }
        }
        store.commit().map_err(store_error)?;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(CniError::io(format!(
                "GC could not release: {}",
                failures.join("; ")
            )))
        }
    }

    /// Fails (code 50) only when no ADD can work: invalid config, data dir not creatable or
    /// writable, lock not obtainable. A full range set is logged, not reported: containerd
    /// turns a STATUS failure into a NotReady node, which evicts every pod on it, and "no room
    /// for one more pod" must not do that. ADD reports exhaustion.
    fn status(&self, req: &Request) -> Result<(), CniError> {
        let conf = IpamConf::load(&req.raw, "", &req.version_text, req.version).map_err(|e| {
            CniError::new(
                ErrorCode::NotAvailable,
                format!("invalid configuration: {}", e.msg),
            )
        })?;
        let dir = conf.store.data_dir.join(&req.config.name);
        let unusable = |why: String| {
            CniError::new(
                ErrorCode::NotAvailable,
                format!("data dir {} is unusable: {why}", dir.display()),
            )
        };
        std::fs::create_dir_all(&dir).map_err(|e| unusable(e.to_string()))?;
        let writable = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
            // SAFETY: access(2) only reads the NUL-terminated path it is given.
            .map(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
            .unwrap_or(false);
        if !writable {
            return Err(unusable(std::io::Error::last_os_error().to_string()));
        }
        // STATUS never waits: a lock held by another command is obtainable once that command
        // ends (and that command releases the leases of earlier boots). A free lock is taken,
        // so the first STATUS of a boot does that release.
        match open_store_within(&conf.store, req, Duration::ZERO) {
            Ok(_) | Err(StoreError::LockTimeout(_)) => {}
            Err(e) => return Err(unusable(e.to_string())),
        }
        let leased = DiskStore::leased_addresses(&dir).map_err(|e| unusable(e.to_string()))?;
        for (i, set) in conf.range_sets.iter().enumerate() {
            let used = leased.iter().filter(|ip| set.contains(**ip)).count() as u128;
            if used >= set.capacity() {
                cni_protocol::cni_log!(
                    "STATUS: range set {i} ({set}) is exhausted: all {used} addresses are \
                     leased; ADD will fail until one is released"
                );
            }
        }
        Ok(())
    }
}
