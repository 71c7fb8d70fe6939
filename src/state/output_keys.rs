//! Which root owns each key of a cache view whose key template may give
//! two rows one key (`keys_may_collide` in [`crate::plan`]). Of the roots
//! whose outputs have a key, the one whose encoded primary key sorts first
//! owns it, so which document a key shows follows from the rows alone, not
//! from the order their changes came in: a root that claims a key a later
//! root owns takes it over, and the other waits; a root that claims a key
//! an earlier root owns gets no output and waits, recorded beside the
//! owner, until the key is released.

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::keycode::prefix_end;
use super::tables::Table;
use super::writer::StateWriter;

/// `view ‖ key` → the root owning the key and the roots waiting for it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyOwner {
    owner: Vec<u8>,
    waiting: Vec<Vec<u8>>,
}

/// What claiming a key found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The root owns the key; `new` when it did not before this claim.
    Owned { new: bool },
    /// Another root owns it (its encoded primary key); the claimer waits.
    Taken { owner: Vec<u8> },
    /// The root took the key over from `previous`, whose primary key sorts
    /// after its own: `previous` now waits, and its output must go without
    /// deleting the key, which the new owner's output holds.
    TakenOver { previous: Vec<u8> },
}

/// What releasing a key found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Whether the key was the releasing root's (or nobody's): only then may
    /// its output be deleted.
    pub was_owned: bool,
    /// The roots that waited for the key, to refresh now that it is free.
    pub waiting: Vec<Vec<u8>>,
}

impl Released {
    /// A key no root claimed: the releasing root's to delete, none waiting.
    pub fn unclaimed() -> Released {
        Released {
            was_owned: true,
            waiting: Vec::new(),
        }
    }
}

impl StateWriter<'_> {
    /// Claims `key` of `view` for the root `pk`.
    pub fn claim_output_key(
        &mut self,
        view: &str,
        key: &str,
        pk: &[u8],
    ) -> Result<Claim, StoreError> {
        let (entry_key, owner) = self.key_owner(view, key)?;
        let Some(mut owner) = owner else {
            let owner = KeyOwner {
                owner: pk.to_vec(),
                waiting: Vec::new(),
            };
            self.changes
                .insert(Table::OutputKeys, &entry_key, &encode(&owner));
            return Ok(Claim::Owned { new: true });
        };
        if owner.owner == pk {
            return Ok(Claim::Owned { new: false });
        }
        if pk < owner.owner.as_slice() {
            let previous = std::mem::replace(&mut owner.owner, pk.to_vec());
            owner.waiting.retain(|waiting| waiting != pk);
            owner.waiting.push(previous.clone());
            self.changes
                .insert(Table::OutputKeys, &entry_key, &encode(&owner));
            return Ok(Claim::TakenOver { previous });
        }
        if !owner.waiting.iter().any(|waiting| waiting == pk) {
            owner.waiting.push(pk.to_vec());
            self.changes
                .insert(Table::OutputKeys, &entry_key, &encode(&owner));
        }
        Ok(Claim::Taken { owner: owner.owner })
    }

    /// Releases `key` of `view`, which the root `pk`'s output no longer has.
    /// A key nobody claimed (an output stored before its view's keys were
    /// claimed) counts as the root's own.
    pub fn release_output_key(
        &mut self,
        view: &str,
        key: &str,
        pk: &[u8],
    ) -> Result<Released, StoreError> {
        let (entry_key, owner) = self.key_owner(view, key)?;
        let Some(owner) = owner else {
            return Ok(Released::unclaimed());
        };
        if owner.owner != pk {
            // An output stored before its view's keys were claimed, under a
            // key another root claimed since: that root's output is there.
            return Ok(Released::default());
        }
        self.changes.remove(Table::OutputKeys, &entry_key);
        // The first in key order claims first, and keeps the key: the
        // others' claims find it taken, with no take-over between them.
        let mut waiting = owner.waiting;
        waiting.sort_unstable();
        Ok(Released {
            was_owned: true,
            waiting,
        })
    }

    /// The entry key of `key` of `view`, and who owns it.
    fn key_owner(&self, view: &str, key: &str) -> Result<(Vec<u8>, Option<KeyOwner>), StoreError> {
        let entry_key = self.names.prefixed(view, key.as_bytes())?;
        let owner = self
            .changes
            .get(Table::OutputKeys, &entry_key)
            .map(|bytes| decode(bytes, view))
            .transpose()?;
        Ok((entry_key, owner))
    }

    /// Forgets which roots own the keys of `view`.
    pub fn clear_output_keys(&mut self, view: &str) -> Result<(), StoreError> {
        if self.changes.tables().is_empty(Table::OutputKeys) {
            return Ok(());
        }
        let prefix = self.names.prefixed(view, &[])?;
        let end = prefix_end(&prefix);
        self.changes.clear_range(Table::OutputKeys, &prefix, &end);
        Ok(())
    }
}

fn encode(owner: &KeyOwner) -> Vec<u8> {
    postcard::to_allocvec(owner).unwrap_or_default()
}

fn decode(bytes: &[u8], view: &str) -> Result<KeyOwner, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        what: "output key owner",
        reason: format!("view {view}: {e}"),
    })
}
