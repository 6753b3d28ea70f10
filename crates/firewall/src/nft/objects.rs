//! nf_tables objects of one table — chains, rules, verdict maps and their elements: the
//! commands that change them (pushed onto a [`Batch`]) and the queries that read them.
//! Features name their table once ([`Table`]) and describe their layout with these.

use super::expr::{parse_rule, ObservedRule};
use super::session::{Batch, Session};
use super::wire::{
    attr, Attrs, MsgBuf, MsgType, NFPROTO_BRIDGE, NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6,
    NFT_DATA_VERDICT, NFT_JUMP, NFT_SET_MAP, NF_ACCEPT, NLM_F_APPEND, NLM_F_CREATE,
};
use crate::error::Result;

/// A table of one nf family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Table<'a> {
    pub(crate) family: u8,
    pub(crate) name: &'a str,
}

/// The hook of a base chain; its policy is accept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hook {
    pub(crate) hooknum: u32,
    pub(crate) priority: i32,
    /// `nat` or `filter`.
    pub(crate) kind: &'static str,
}

impl Hook {
    pub(crate) const fn nat(hooknum: u32, priority: i32) -> Self {
        Hook {
            hooknum,
            priority,
            kind: "nat",
        }
    }

    pub(crate) const fn filter(hooknum: u32, priority: i32) -> Self {
        Hook {
            hooknum,
            priority,
            kind: "filter",
        }
    }
}

/// A verdict map's key: `nft`'s data type id (so `nft list` prints it), its length, and any set
/// user data `nft` needs to print it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MapKey<'a> {
    pub(crate) data_type: u32,
    pub(crate) len: u32,
    pub(crate) userdata: Option<&'a [u8]>,
}

fn put_key(m: &mut MsgBuf, key: &[u8]) {
    m.nest(attr::SET_ELEM_KEY, |m| m.put(attr::DATA_VALUE, key));
}

/// (key bytes decoded by `key`, jump target) of each element in a set-element message of a
/// verdict map; elements `key` rejects are skipped.
fn parse_verdict_elements<K>(
    reply: &[u8],
    key: impl Fn(&[u8]) -> Option<K>,
) -> Vec<(K, Option<String>)> {
    let attrs = Attrs::new(reply);
    let Some(list) = attrs.nested(attr::SET_ELEM_LIST_ELEMENTS) else {
        return Vec::new();
    };
    list.filter_map(|(_, elem)| {
        let elem = Attrs::new(elem);
        let key = elem
            .nested(attr::SET_ELEM_KEY)?
            .find(attr::DATA_VALUE)
            .and_then(&key)?;
        let target = elem
            .nested(attr::SET_ELEM_DATA)
            .and_then(|d| d.nested(attr::DATA_VERDICT))
            .and_then(|v| v.str(attr::VERDICT_CHAIN))
            .map(str::to_string);
        Some((key, target))
    })
    .collect()
}

impl<'a> Table<'a> {
    pub(crate) const fn inet(name: &'a str) -> Self {
        Table {
            family: NFPROTO_INET,
            name,
        }
    }

    pub(crate) const fn bridge(name: &'a str) -> Self {
        Table {
            family: NFPROTO_BRIDGE,
            name,
        }
    }

    /// `<family> <name>`, as `nft` names the table.
    pub(crate) fn describe(self) -> String {
        let family = match self.family {
            NFPROTO_INET => "inet",
            NFPROTO_IPV4 => "ip",
            NFPROTO_IPV6 => "ip6",
            NFPROTO_BRIDGE => "bridge",
            _ => "unknown-family",
        };
        format!("{family} {}", self.name)
    }

    // -- commands --------------------------------------------------------------------------

    /// Create the table if missing.
    pub(crate) fn push_create(self, b: &mut Batch) {
        b.push(
            MsgType::NewTable,
            NLM_F_CREATE,
            self.family,
            format!("creating table {}", self.describe()),
            |m| m.put_str(attr::TABLE_NAME, self.name),
        );
    }

    /// Create a chain if missing; with a hook, a base chain with policy accept.
    pub(crate) fn push_new_chain(self, b: &mut Batch, chain: &str, hook: Option<Hook>) {
        b.push(
            MsgType::NewChain,
            NLM_F_CREATE,
            self.family,
            format!("creating chain {} {chain}", self.describe()),
            |m| {
                m.put_str(attr::CHAIN_TABLE, self.name);
                m.put_str(attr::CHAIN_NAME, chain);
                if let Some(hook) = hook {
                    m.nest(attr::CHAIN_HOOK, |m| {
                        m.put_be32(attr::HOOK_HOOKNUM, hook.hooknum);
                        m.put_be32(attr::HOOK_PRIORITY, hook.priority as u32);
                    });
                    m.put_be32(attr::CHAIN_POLICY, NF_ACCEPT);
                    m.put_str(attr::CHAIN_TYPE, hook.kind);
                }
            },
        );
    }

    /// Declare a base chain and empty it, for its rules to be written again (which keeps a
    /// skeleton's ADD idempotent and repairs edited rules).
    pub(crate) fn push_base_chain(self, b: &mut Batch, chain: &str, hook: Hook) {
        self.push_new_chain(b, chain, Some(hook));
        self.push_flush_chain(b, chain);
    }

    /// Remove every rule of a chain.
    pub(crate) fn push_flush_chain(self, b: &mut Batch, chain: &str) {
        b.push(
            MsgType::DelRule,
            0,
            self.family,
            format!("flushing chain {} {chain}", self.describe()),
            |m| {
                m.put_str(attr::RULE_TABLE, self.name);
                m.put_str(attr::RULE_CHAIN, chain);
            },
        );
    }

    /// Delete a chain and its rules; the kernel refuses (EBUSY) while anything jumps to it.
    pub(crate) fn push_delete_chain(self, b: &mut Batch, chain: &str) {
        b.push(
            MsgType::DelChain,
            0,
            self.family,
            format!("deleting chain {} {chain}", self.describe()),
            |m| {
                m.put_str(attr::CHAIN_TABLE, self.name);
                m.put_str(attr::CHAIN_NAME, chain);
            },
        );
    }

    /// Append a rule whose expressions (and user data) `build` writes.
    pub(crate) fn push_rule(
        self,
        b: &mut Batch,
        chain: &str,
        what: String,
        build: impl FnOnce(&mut MsgBuf),
    ) {
        b.push(
            MsgType::NewRule,
            NLM_F_CREATE | NLM_F_APPEND,
            self.family,
            what,
            |m| {
                m.put_str(attr::RULE_TABLE, self.name);
                m.put_str(attr::RULE_CHAIN, chain);
                build(m);
            },
        );
    }

    pub(crate) fn push_delete_rule(self, b: &mut Batch, chain: &str, handle: u64) {
        b.push(
            MsgType::DelRule,
            0,
            self.family,
            format!(
                "deleting rule handle {handle} of chain {} {chain}",
                self.describe()
            ),
            |m| {
                m.put_str(attr::RULE_TABLE, self.name);
                m.put_str(attr::RULE_CHAIN, chain);
                m.put_be64(attr::RULE_HANDLE, handle);
            },
        );
    }

    /// Create a verdict map if missing. `set_id` names it within the transaction only, as the
    /// kernel requires.
    pub(crate) fn push_new_verdict_map(self, b: &mut Batch, map: &str, key: MapKey, set_id: u32) {
        b.push(
            MsgType::NewSet,
            NLM_F_CREATE,
            self.family,
            format!("creating map {} {map}", self.describe()),
            |m| {
                m.put_str(attr::SET_TABLE, self.name);
                m.put_str(attr::SET_NAME, map);
                m.put_be32(attr::SET_FLAGS, NFT_SET_MAP);
                m.put_be32(attr::SET_KEY_TYPE, key.data_type);
                m.put_be32(attr::SET_KEY_LEN, key.len);
                m.put_be32(attr::SET_DATA_TYPE, NFT_DATA_VERDICT);
                m.put_be32(attr::SET_ID, set_id);
                if let Some(userdata) = key.userdata {
                    m.put(attr::SET_USERDATA, userdata);
                }
            },
        );
    }

    /// Add `key : jump <chain>` to a verdict map; `what` names it in error messages.
    pub(crate) fn push_jump_element(
        self,
        b: &mut Batch,
        map: &str,
        key: &[u8],
        chain: &str,
        what: String,
    ) {
        b.push(MsgType::NewSetElem, NLM_F_CREATE, self.family, what, |m| {
            m.put_str(attr::SET_ELEM_LIST_TABLE, self.name);
            m.put_str(attr::SET_ELEM_LIST_SET, map);
            m.nest(attr::SET_ELEM_LIST_ELEMENTS, |m| {
                m.nest(attr::LIST_ELEM, |m| {
                    put_key(m, key);
                    m.nest(attr::SET_ELEM_DATA, |m| {
                        m.nest(attr::DATA_VERDICT, |m| {
                            m.put_be32(attr::VERDICT_CODE, NFT_JUMP as u32);
                            m.put_str(attr::VERDICT_CHAIN, chain);
                        });
                    });
                });
            });
        });
    }

    /// Delete the element `key` of a map; `what` names it in error messages.
    pub(crate) fn push_delete_element(self, b: &mut Batch, map: &str, key: &[u8], what: String) {
        b.push(MsgType::DelSetElem, 0, self.family, what, |m| {
            m.put_str(attr::SET_ELEM_LIST_TABLE, self.name);
            m.put_str(attr::SET_ELEM_LIST_SET, map);
            m.nest(attr::SET_ELEM_LIST_ELEMENTS, |m| {
                m.nest(attr::LIST_ELEM, |m| put_key(m, key));
            });
        });
    }

    // -- queries ---------------------------------------------------------------------------

    pub(crate) fn exists(self, sock: &mut Session) -> Result<bool> {
        let action = format!("looking up table {}", self.describe());
        let found = sock.get(&action, MsgType::GetTable, self.family, |m| {
            m.put_str(attr::TABLE_NAME, self.name)
        })?;
        Ok(found.is_some())
    }

    pub(crate) fn chain_exists(self, sock: &mut Session, chain: &str) -> Result<bool> {
        let action = format!("looking up chain {} {chain}", self.describe());
        let found = sock.get(&action, MsgType::GetChain, self.family, |m| {
            m.put_str(attr::CHAIN_TABLE, self.name);
            m.put_str(attr::CHAIN_NAME, chain);
        })?;
        Ok(found.is_some())
    }

    /// The rule messages (attributes) of one chain, or `None` if the chain does not exist.
    pub(crate) fn chain_rule_messages(
        self,
        sock: &mut Session,
        chain: &str,
    ) -> Result<Option<Vec<Vec<u8>>>> {
        if !self.chain_exists(sock, chain)? {
            return Ok(None);
        }
        let action = format!("listing the rules of chain {} {chain}", self.describe());
        let replies = sock.dump(&action, MsgType::GetRule, self.family, |m| {
            m.put_str(attr::RULE_TABLE, self.name);
            m.put_str(attr::RULE_CHAIN, chain);
        })?;
        Ok(Some(replies))
    }

    /// The rules of one chain, or `None` if the chain does not exist.
    pub(crate) fn chain_rules(
        self,
        sock: &mut Session,
        chain: &str,
    ) -> Result<Option<Vec<ObservedRule>>> {
        Ok(self
            .chain_rule_messages(sock, chain)?
            .map(|replies| replies.iter().map(|r| parse_rule(Attrs::new(r))).collect()))
    }

    /// Names of all chains of the table (none if it does not exist).
    pub(crate) fn chains(self, sock: &mut Session) -> Result<Vec<String>> {
        let action = format!("listing the chains of {}", self.describe());
        let replies = sock.dump(&action, MsgType::GetChain, self.family, |m| {
            m.put_str(attr::CHAIN_TABLE, self.name);
        })?;
        Ok(replies
            .iter()
            .map(|r| Attrs::new(r))
            .filter(|a| a.str(attr::CHAIN_TABLE) == Some(self.name))
            .filter_map(|a| a.str(attr::CHAIN_NAME).map(str::to_string))
            .collect())
    }

    /// Every element of a verdict map: (key decoded by `key`, chain it jumps to).
    pub(crate) fn map_elements<K>(
        self,
        sock: &mut Session,
        map: &str,
        key: impl Fn(&[u8]) -> Option<K>,
    ) -> Result<Vec<(K, Option<String>)>> {
        let action = format!("listing map {} {map}", self.describe());
        let mut out = Vec::new();
        for reply in sock.dump(&action, MsgType::GetSetElem, self.family, |m| {
            m.put_str(attr::SET_ELEM_LIST_TABLE, self.name);
            m.put_str(attr::SET_ELEM_LIST_SET, map);
        })? {
            out.extend(parse_verdict_elements(&reply, &key));
        }
        Ok(out)
    }

    /// The chain the element `key` of a verdict map jumps to, if the element exists. `what`
    /// names the key in error messages.
    pub(crate) fn element_target(
        self,
        sock: &mut Session,
        map: &str,
        key: &[u8],
        what: &str,
    ) -> Result<Option<String>> {
        let action = format!("looking up {what} in map {} {map}", self.describe());
        let reply = sock.get(&action, MsgType::GetSetElem, self.family, |m| {
            m.put_str(attr::SET_ELEM_LIST_TABLE, self.name);
            m.put_str(attr::SET_ELEM_LIST_SET, map);
            m.nest(attr::SET_ELEM_LIST_ELEMENTS, |m| {
                m.nest(attr::LIST_ELEM, |m| put_key(m, key));
            });
        })?;
        let Some(reply) = reply else {
            return Ok(None);
        };
        Ok(parse_verdict_elements(&reply, |k| Some(k == key))
            .into_iter()
            .find(|(same, _)| *same)
            .and_then(|(_, target)| target))
    }
}
