//! `RouteSocket`: a `NETLINK_ROUTE` socket bound to one network namespace.
//!
//! The verbs live next to the objects they act on (`link`, `bridge`, `veth`, `address`, `route`);
//! this file holds the socket, its namespace label for error messages, and shared helpers.

use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;

use crate::error::{Error, Failure, Result};
use crate::netlink::NetlinkSocket;
use crate::netns::{run_in_netns, Netns};

/// A synchronous rtnetlink socket; every request it sends acts on the netns it was created in.
#[derive(Debug)]
pub struct RouteSocket {
    nl: NetlinkSocket,
    /// " in /run/netns/x" for sockets opened in another netns, empty otherwise.
    where_: String,
}

impl RouteSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let nl = NetlinkSocket::open(NETLINK_ROUTE)
            .map_err(|e| Error::from_io("opening a NETLINK_ROUTE socket", e))?;
        Ok(RouteSocket {
            nl,
            where_: String::new(),
        })
    }

    /// Opens a socket inside `ns` (created on a throwaway thread; the socket stays bound to `ns`).
    pub fn open_in(ns: &Netns) -> Result<Self> {
        let mut sock = run_in_netns(ns, Self::open)??;
        sock.where_ = format!(" in {}", ns.path().display());
        Ok(sock)
    }

    /// The raw transport, for requests this type has no verb for.
    pub fn netlink(&mut self) -> &mut NetlinkSocket {
        &mut self.nl
    }

    /// Suffix naming the socket's netns in error messages (empty for the caller's own netns).
    pub(crate) fn where_(&self) -> &str {
        &self.where_
    }

    /// Sends an acknowledged request; `op` describes it for errors (built only on failure).
    pub(crate) fn ack<F>(&mut self, msg: RouteNetlinkMessage, flags: u16, op: F) -> Result<()>
    where
        F: FnOnce(&mut Self) -> String,
    {
        match self.nl.request(msg, flags) {
            Ok(_) => Ok(()),
            Err(f) => Err(self.fail(f, op)),
        }
    }

    /// Sends a request expecting replies before the ACK (a `GET` of one object).
    pub(crate) fn get<F>(
        &mut self,
        msg: RouteNetlinkMessage,
        op: F,
    ) -> Result<Vec<RouteNetlinkMessage>>
    where
        F: FnOnce(&mut Self) -> String,
    {
        self.get_with_flags(msg, 0, op)
    }

    /// Like [`get`](Self::get) with extra flags (e.g. `NLM_F_ECHO` on a create).
    pub(crate) fn get_with_flags<F>(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: F,
    ) -> Result<Vec<RouteNetlinkMessage>>
    where
        F: FnOnce(&mut Self) -> String,
    {
        match self.nl.request(msg, flags) {
            Ok(v) => Ok(v),
            Err(f) => Err(self.fail(f, op)),
        }
    }

    /// Runs a dump; `make` builds the request (it may be sent again if the dump is interrupted).
    pub(crate) fn dump<M, F>(&mut self, make: M, op: F) -> Result<Vec<RouteNetlinkMessage>>
    where
        M: Fn() -> RouteNetlinkMessage,
        F: FnOnce(&mut Self) -> String,
    {
        match self.nl.dump(make) {
            Ok(v) => Ok(v),
            Err(f) => Err(self.fail(f, op)),
        }
    }

    fn fail<F>(&mut self, f: Failure, op: F) -> Error
    where
        F: FnOnce(&mut Self) -> String,
    {
        let op = op(self);
        f.at(format!("{op}{}", self.where_))
    }

    /// Names link `index` for an error message: its name if it still exists, else `link #index`.
    ///
    /// Used only on error paths, so the lookup costs nothing when things go well.
    pub(crate) fn describe_link(&mut self, index: u32) -> String {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let found = self
            .nl
            .request(RouteNetlinkMessage::GetLink(msg), 0)
            .ok()
            .and_then(|v| {
                v.into_iter().find_map(|m| match m {
                    RouteNetlinkMessage::NewLink(l) => {
                        l.attributes.into_iter().find_map(|a| match a {
                            LinkAttribute::IfName(n) => Some(n),
                            _ => None,
                        })
                    }
                    _ => None,
                })
            });
        found.unwrap_or_else(|| format!("link #{index}"))
    }
}
