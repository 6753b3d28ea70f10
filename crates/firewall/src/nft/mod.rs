//! The nf_tables toolkit: the only code that knows nf_tables kernel constants.
//!
//! - [`wire`]: constants, message encoding ([`wire::MsgBuf`]) and attribute parsing;
//! - [`expr`]: rule expressions and a parser of the rules we and the reference write;
//! - [`objects`]: tables, chains, rules, verdict maps and elements as batch commands and
//!   queries ([`objects::Table`]);
//! - [`session`]: requests, dumps and generation-bound transactions over netops's netlink
//!   transport, with the node-wide writer lock.
//!
//! Features ([`crate::masquerade`], [`crate::portmap`], [`crate::macspoof`]) describe their
//! layout with these and hold no kernel constant of their own.

pub(crate) mod expr;
pub(crate) mod objects;
pub(crate) mod session;
pub(crate) mod wire;

/// Does the kernel offer nf_tables to this thread's network namespace?
pub(crate) fn available() -> bool {
    session::Session::open()
        .and_then(|mut s| s.generation())
        .is_ok()
}
