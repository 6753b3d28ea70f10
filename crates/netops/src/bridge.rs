//! Bridges: creation, port options (hairpin, isolated) and VLAN membership.

use std::ops::RangeInclusive;

use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecBridge, BridgeFlag, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge, InfoData, InfoKind,
    LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, LinkProtoInfoBridge,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::link::{absent_is_false, link_msg, validate_ifname, Link, MacAddr};
use crate::rtnl::RouteSocket;

/// `IFLA_BRPORT_MODE` (hairpin) in `linux/if_link.h`.
const IFLA_BRPORT_MODE: u16 = 4;
/// `IFLA_BRPORT_ISOLATED` in `linux/if_link.h`.
const IFLA_BRPORT_ISOLATED: u16 = 33;

/// What to create: `ip link add NAME [mtu N] [address MAC] type bridge vlan_filtering 0|1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    /// Interface name.
    pub name: String,
    /// MTU; the kernel default when `None`.
    pub mtu: Option<u32>,
    /// Enable VLAN filtering (`IFLA_BR_VLAN_FILTERING`).
    pub vlan_filtering: bool,
    /// `IFLA_BR_VLAN_DEFAULT_PVID` (0 disables the default PVID); kernel default (1) when `None`.
    pub vlan_default_pvid: Option<u16>,
    /// A fixed MAC, so the bridge's address does not follow its ports.
    pub mac: Option<MacAddr>,
    /// Bring it up in the same request.
    pub up: bool,
}

impl BridgeSpec {
    /// A plain bridge named `name`: kernel defaults, created up.
    pub fn new(name: impl Into<String>) -> Self {
        BridgeSpec {
            name: name.into(),
            mtu: None,
            vlan_filtering: false,
            vlan_default_pvid: None,
            mac: None,
            up: true,
        }
    }
}

/// Which VLAN table a VLAN request targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VlanTarget {
    /// The port's entry in its master bridge (`bridge vlan add dev PORT ... master`, the default).
    Port,
    /// The bridge device's own entry (`bridge vlan add dev BRIDGE ... self`).
    BridgeSelf,
}

/// One VLAN on a bridge port (`bridge vlan show`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeVlan {
    /// VLAN id (1..=4094).
    pub vid: u16,
    /// Untagged ingress frames are assigned this VLAN.
    pub pvid: bool,
    /// Frames of this VLAN leave the port untagged.
    pub untagged: bool,
}

impl BridgeVlan {
    /// A tagged, non-PVID membership of `vid`.
    pub fn tagged(vid: u16) -> Self {
        BridgeVlan {
            vid,
            pvid: false,
            untagged: false,
        }
    }

    /// The access-port form: PVID and untagged.
    pub fn access(vid: u16) -> Self {
        BridgeVlan {
            vid,
            pvid: true,
            untagged: true,
        }
    }
}

/// Bridge port settings to change; `None` leaves a setting as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BridgePortChange {
    /// Hairpin mode (`bridge link set dev X hairpin on|off`).
    pub hairpin: Option<bool>,
    /// Port isolation (`bridge link set dev X isolated on|off`).
    pub isolated: Option<bool>,
}

fn vlan_flags(v: &BridgeVlan) -> BridgeVlanInfoFlags {
    let mut f = BridgeVlanInfoFlags::empty();
    if v.pvid {
        f |= BridgeVlanInfoFlags::Pvid;
    }
    if v.untagged {
        f |= BridgeVlanInfoFlags::Untagged;
    }
    f
}

fn vlan_msg(index: u32, target: VlanTarget, infos: Vec<BridgeVlanInfo>) -> LinkMessage {
    let mut msg = link_msg(index);
    msg.header.interface_family = AddressFamily::Bridge;
    let mut spec = Vec::with_capacity(infos.len() + 1);
    if target == VlanTarget::BridgeSelf {
        // BRIDGE_FLAGS_SELF; without flags the kernel acts on the master (port entry).
        spec.push(AfSpecBridge::Flags(BridgeFlag::LowerDev));
    }
    spec.extend(infos.into_iter().map(AfSpecBridge::VlanInfo));
    msg.attributes.push(LinkAttribute::AfSpecBridge(spec));
    msg
}

impl RouteSocket {
    /// Creates a bridge; fails with [`Error::Exists`] if the name is taken.
    pub fn create_bridge(&mut self, spec: &BridgeSpec) -> Result<()> {
        validate_ifname(&spec.name)?;
        let mut msg = LinkMessage::default();
        if spec.up {
            msg.header.flags = LinkFlags::Up;
            msg.header.change_mask = LinkFlags::Up;
        }
        msg.attributes
            .push(LinkAttribute::IfName(spec.name.clone()));
        if let Some(mtu) = spec.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = spec.mac {
            msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        // VLAN options are sent only when asked for: kernels built without
        // CONFIG_BRIDGE_VLAN_FILTERING refuse them with EOPNOTSUPP, even "vlan_filtering 0".
        let mut opts = Vec::new();
        if spec.vlan_filtering {
            opts.push(InfoBridge::VlanFiltering(true));
        }
        if let Some(pvid) = spec.vlan_default_pvid {
            opts.push(InfoBridge::VlanDefaultPvid(pvid));
        }
        let mut info = vec![LinkInfo::Kind(InfoKind::Bridge)];
        if !opts.is_empty() {
            info.push(LinkInfo::Data(InfoData::Bridge(opts)));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(info));
        let vlan_opts = spec.vlan_filtering || spec.vlan_default_pvid.is_some();
        let r = self.ack(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            |_| format!("creating bridge {}", spec.name),
        );
        match r {
            Err(Error::Kernel {
                op,
                errno: libc::EOPNOTSUPP,
                detail: None,
            }) if vlan_opts => Err(Error::Kernel {
                op,
                errno: libc::EOPNOTSUPP,
                detail: Some(
                    "VLAN options refused; is the kernel built without CONFIG_BRIDGE_VLAN_FILTERING?"
                        .into(),
                ),
            }),
            other => other,
        }
    }

    /// Creates the bridge or adopts an existing one of that name; refuses a non-bridge.
    ///
    /// Parallel ADDs race to create the same bridge, so EEXIST is normal here. An existing bridge
    /// keeps its MTU and VLAN settings (the reference does the same); it is only brought up when
    /// `spec.up` asks for it and it is down.
    pub fn ensure_bridge(&mut self, spec: &BridgeSpec) -> Result<Link> {
        match self.create_bridge(spec) {
            Ok(()) | Err(Error::Exists { .. }) => {}
            Err(e) => return Err(e),
        }
        let link = self.link_by_name(&spec.name)?.ok_or_else(|| {
            Error::from_errno(
                format!("looking up bridge {}{}", spec.name, self.where_()),
                libc::ENODEV,
                Some("deleted right after creation".into()),
            )
        })?;
        if link.kind.as_deref() != Some("bridge") {
            return Err(Error::WrongKind {
                name: spec.name.clone(),
                expected: "bridge".into(),
                found: link.kind,
            });
        }
        // An adopted bridge someone left down is brought up, as the reference does.
        if spec.up && !link.up {
            self.set_link_up(link.index)?;
            return Ok(Link { up: true, ..link });
        }
        Ok(link)
    }

    /// Changes bridge port settings of an enslaved link in one request.
    pub fn set_bridge_port(&mut self, index: u32, change: &BridgePortChange) -> Result<()> {
        let mut opts = Vec::new();
        if let Some(h) = change.hairpin {
            opts.push(LinkProtoInfoBridge::Other(DefaultNla::new(
                IFLA_BRPORT_MODE,
                vec![u8::from(h)],
            )));
        }
        if let Some(i) = change.isolated {
            opts.push(LinkProtoInfoBridge::Other(DefaultNla::new(
                IFLA_BRPORT_ISOLATED,
                vec![u8::from(i)],
            )));
        }
        if opts.is_empty() {
            return Ok(());
        }
        let mut msg = link_msg(index);
        msg.header.interface_family = AddressFamily::Bridge;
        msg.attributes.push(LinkAttribute::ProtoInfoBridge(opts));
        let change = *change;
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, move |s| {
            format!(
                "setting bridge port options {change:?} on {}",
                s.describe_link(index)
            )
        })
    }

    /// Sets hairpin mode on a bridge port.
    pub fn set_bridge_port_hairpin(&mut self, index: u32, on: bool) -> Result<()> {
        self.set_bridge_port(
            index,
            &BridgePortChange {
                hairpin: Some(on),
                ..Default::default()
            },
        )
    }

    /// Sets port isolation on a bridge port.
    pub fn set_bridge_port_isolated(&mut self, index: u32, on: bool) -> Result<()> {
        self.set_bridge_port(
            index,
            &BridgePortChange {
                isolated: Some(on),
                ..Default::default()
            },
        )
    }

    /// Adds one VLAN (`bridge vlan add dev X vid N [pvid] [untagged] [self]`).
    pub fn bridge_vlan_add(
        &mut self,
        index: u32,
        vlan: BridgeVlan,
        target: VlanTarget,
    ) -> Result<()> {
        let info = BridgeVlanInfo {
            flags: vlan_flags(&vlan),
            vid: vlan.vid,
        };
        let msg = vlan_msg(index, target, vec![info]);
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, move |s| {
            format!("adding VLAN {} to {}", vlan.vid, s.describe_link(index))
        })
    }

    /// Adds a tagged VLAN range in one request (`bridge vlan add dev X vid A-B`), for trunks.
    pub fn bridge_vlan_add_range(
        &mut self,
        index: u32,
        vids: RangeInclusive<u16>,
        target: VlanTarget,
    ) -> Result<()> {
        let (first, last) = (*vids.start(), *vids.end());
        if first == last {
            return self.bridge_vlan_add(index, BridgeVlan::tagged(first), target);
        }
        let msg = vlan_msg(index, target, range_infos(first, last));
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, move |s| {
            format!("adding VLANs {first}-{last} to {}", s.describe_link(index))
        })
    }

    /// Removes one VLAN (`bridge vlan del`); removing an absent VLAN is not an error. Whether it
    /// was there cannot be told from the answer: kernels up to at least 6.1 acknowledge the
    /// removal of an absent VLAN, newer ones answer ENOENT.
    pub fn bridge_vlan_del(&mut self, index: u32, vid: u16, target: VlanTarget) -> Result<()> {
        let info = BridgeVlanInfo {
            flags: BridgeVlanInfoFlags::empty(),
            vid,
        };
        let msg = vlan_msg(index, target, vec![info]);
        let r = self.ack(RouteNetlinkMessage::DelLink(msg), 0, move |s| {
            format!("removing VLAN {vid} from {}", s.describe_link(index))
        });
        absent_is_false(r).map(|_| ())
    }

    /// Removes a VLAN range in one request; removing absent VLANs is not an error.
    pub fn bridge_vlan_del_range(
        &mut self,
        index: u32,
        vids: RangeInclusive<u16>,
        target: VlanTarget,
    ) -> Result<()> {
        let (first, last) = (*vids.start(), *vids.end());
        if first == last {
            return self.bridge_vlan_del(index, first, target);
        }
        let msg = vlan_msg(index, target, range_infos(first, last));
        let r = self.ack(RouteNetlinkMessage::DelLink(msg), 0, move |s| {
            format!(
                "removing VLANs {first}-{last} from {}",
                s.describe_link(index)
            )
        });
        absent_is_false(r).map(|_| ())
    }

    /// Lists the VLANs of a bridge port, or of a bridge itself (`bridge vlan show dev X`).
    pub fn bridge_vlans(&mut self, index: u32) -> Result<Vec<BridgeVlan>> {
        let replies = self.dump(
            || {
                let mut msg = LinkMessage::default();
                msg.header.interface_family = AddressFamily::Bridge;
                msg.attributes
                    .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
                RouteNetlinkMessage::GetLink(msg)
            },
            |s| format!("listing VLANs of {}", s.describe_link(index)),
        )?;
        let mut out = Vec::new();
        for m in replies {
            let RouteNetlinkMessage::NewLink(l) = m else {
                continue;
            };
            if l.header.index != index {
                continue;
            }
            for attr in l.attributes {
                let LinkAttribute::AfSpecBridge(specs) = attr else {
                    continue;
                };
                for s in specs {
                    if let AfSpecBridge::VlanInfo(v) = s {
                        out.push(BridgeVlan {
                            vid: v.vid,
                            pvid: v.flags.contains(BridgeVlanInfoFlags::Pvid),
                            untagged: v.flags.contains(BridgeVlanInfoFlags::Untagged),
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

fn range_infos(first: u16, last: u16) -> Vec<BridgeVlanInfo> {
    vec![
        BridgeVlanInfo {
            flags: BridgeVlanInfoFlags::RangeBegin,
            vid: first,
        },
        BridgeVlanInfo {
            flags: BridgeVlanInfoFlags::RangeEnd,
            vid: last,
        },
    ]
}
