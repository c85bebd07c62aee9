//! Event ids that reveal nothing: the offset in an id is sealed, so that a connection learns no
//! count of the events it may not see (a customer subscribed to `orders` would otherwise read
//! the shop's order volume off the gaps between its own ids: the German tank problem).
//!
//! An id is `<namespace>.<epoch>.<seal>`: the seal is one AES-128 block, the offset (8 bytes)
//! and a check of the namespace and the epoch (8 bytes), encrypted, in base64url (22
//! characters). AES is a pseudorandom permutation: without the key, seals of consecutive
//! offsets look unrelated, and a seal forged or altered decrypts to a block whose check does
//! not match (a chance of 2^-64 per try), so it is refused like a malformed id. Sealing is
//! deterministic, so every node that holds the key gives an event the same id; it costs one
//! block encryption per event (not per recipient).
//!
//! The key is derived (HMAC-SHA-256) from `--position-secret`, or by default from the HS256
//! token secret, which every node of a deployment shares. A server verifying RS/ES tokens has no
//! shared secret to derive it from: alone it makes a random key (ids then last as long as the
//! process, like its in-memory streams), and on Redis it must be given one.

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::{Aes128, Block};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::position::{BadPosition, Position};

/// The characters of a seal: 16 bytes in base64url without padding.
const SEAL_LEN: usize = 22;

/// What seals and opens positions; shared by every node of a deployment.
#[derive(Clone)]
pub struct PositionKey {
    cipher: Aes128,
}

impl std::fmt::Debug for PositionKey {
    /// Never shows the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PositionKey(..)")
    }
}

impl PositionKey {
    /// The key derived from `secret` (every node given the same secret seals alike).
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"omnicast event positions v1");
        let bytes = mac.finalize().into_bytes();
        PositionKey {
            cipher: Aes128::new_from_slice(&bytes[..16]).expect("a 16-byte key"),
        }
    }

    /// A key of this process alone.
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the OS provides randomness");
        Self::derive(&secret)
    }

    /// The id of the event at `position`: `<namespace>.<epoch>.<seal>`.
    pub fn seal(&self, position: &Position) -> String {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&position.offset.to_be_bytes());
        block[8..].copy_from_slice(&check(&position.namespace, &position.epoch));
        let mut block = Block::from(block);
        self.cipher.encrypt_block(&mut block);
        let mut id = String::with_capacity(position.namespace.len() + position.epoch.len() + 24);
        id.push_str(&position.namespace);
        id.push('.');
        id.push_str(&position.epoch);
        id.push('.');
        URL_SAFE_NO_PAD.encode_string(block, &mut id);
        id
    }

    /// The position an id names, if this key sealed it.
    pub fn open(&self, id: &str) -> Result<Position, BadPosition> {
        let (namespace, epoch, seal) = Position::parts(id)?;
        let bad = |reason| BadPosition::new(id, reason);
        let mut block = [0u8; 16];
        if seal.len() != SEAL_LEN
            || URL_SAFE_NO_PAD
                .decode_slice(seal, &mut block)
                .ok()
                .filter(|&n| n == 16)
                .is_none()
        {
            return Err(bad("its position part is not one this server gives"));
        }
        let mut block = Block::from(block);
        self.cipher.decrypt_block(&mut block);
        if block[8..] != check(namespace, epoch) {
            return Err(bad("its position part was not sealed by this deployment"));
        }
        let offset = u64::from_be_bytes(block[..8].try_into().expect("eight bytes"));
        Ok(Position {
            namespace: namespace.to_owned(),
            epoch: epoch.to_owned(),
            offset,
        })
    }
}

/// What binds a seal to its namespace and epoch: FNV-1a (64 bits) of `namespace.epoch`, stable
/// across builds and machines. It need not be a cryptographic hash: it is encrypted with the
/// offset, and only the key holder can make a block decrypt to a given check.
fn check(namespace: &str, epoch: &str) -> [u8; 8] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in namespace.bytes().chain([b'.']).chain(epoch.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::{PositionKey, SEAL_LEN};
    use crate::position::Position;

    fn at(offset: u64) -> Position {
        Position {
            namespace: "orders".into(),
            epoch: "k3v9q2mf".into(),
            offset,
        }
    }

    #[test]
    fn a_sealed_position_opens_to_itself_and_only_with_its_key() {
        let key = PositionKey::derive(b"secret");
        for offset in [0, 1, 2, 37, u64::MAX] {
            let id = key.seal(&at(offset));
            assert_eq!(key.open(&id), Ok(at(offset)), "{id}");
            let seal = id.rsplit('.').next().unwrap();
            assert_eq!(seal.len(), SEAL_LEN);
            assert!(!id.contains(&format!(".{offset}")), "{id}");
        }
        // The same secret, the same ids (every node); another secret opens none of them.
        assert_eq!(
            PositionKey::derive(b"secret").seal(&at(5)),
            key.seal(&at(5))
        );
        let other = PositionKey::derive(b"other");
        assert!(other.open(&key.seal(&at(5))).is_err());
    }

    #[test]
    fn a_tampered_or_moved_seal_is_refused() {
        let key = PositionKey::derive(b"secret");
        let id = key.seal(&at(41));
        let (head, seal) = id.rsplit_once('.').unwrap();
        // Every single-character change of the seal.
        for i in 0..seal.len() {
            for replacement in ['A', 'f', '-', '_'] {
                let mut changed: Vec<char> = seal.chars().collect();
                if changed[i] == replacement {
                    continue;
                }
                changed[i] = replacement;
                let forged = format!("{head}.{}", changed.iter().collect::<String>());
                assert!(key.open(&forged).is_err(), "{forged}");
            }
        }
        // A seal moved to another namespace or epoch.
        assert!(key.open(&format!("payments.k3v9q2mf.{seal}")).is_err());
        assert!(key.open(&format!("orders.other.{seal}")).is_err());
        // Readable offsets and odd lengths.
        for id in [
            "orders.k3v9q2mf.41",
            "orders.k3v9q2mf.",
            "orders.k3v9q2mf.AAAA",
        ] {
            assert!(key.open(id).is_err(), "{id}");
        }
    }
}
