//! Visitor identification: a site that knows its logged-in user computes
//! `hex(HMAC-SHA256(identity_secret, email))` on its server and passes it to the widget
//! with the email; Parley recomputes it and only then attaches the visitor to that
//! contact. HMAC (RFC 2104) is written out over `sha2` here: it is a dozen lines, and
//! tested against the RFC 4231 vectors below.

use sha2::{Digest as _, Sha256};

const BLOCK: usize = 64;

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

/// The hash a site sends for `email` (lower-case hex). The email is used as given,
/// after trimming and lower-casing, so `Ana@Example.com` and `ana@example.com` match.
pub fn identity_hash(secret: &str, email: &str) -> String {
    hex::encode(hmac_sha256(
        secret.as_bytes(),
        email.trim().to_lowercase().as_bytes(),
    ))
}

/// Whether `hash` (hex, any case) is the identity hash of `email`; constant time in
/// the hash's content.
pub fn verify(secret: &str, email: &str, hash: &str) -> bool {
    let want = identity_hash(secret, email);
    let got = hash.trim().to_ascii_lowercase();
    want.len() == got.len()
        && want
            .bytes()
            .zip(got.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_vectors() {
        // Test case 1.
        assert_eq!(
            hex::encode(hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn verify_accepts_only_the_right_hash() {
        let h = identity_hash("s3cret", "ana@example.com");
        assert!(verify("s3cret", "Ana@Example.com ", &h));
        assert!(verify("s3cret", "ana@example.com", &h.to_uppercase()));
        assert!(!verify("other", "ana@example.com", &h));
        assert!(!verify("s3cret", "bob@example.com", &h));
        assert!(!verify("s3cret", "ana@example.com", &h[..63]));
        assert!(!verify("s3cret", "ana@example.com", ""));
    }
}
