//! The membership datagram's framing (`wire`): what `seal` writes, `open` takes back, with and
//! without a key, and what it refuses.

use super::wire::{open, seal};
use super::{MembershipError, MAGIC, OVERHEAD};
use crate::auth::ClusterKey;

#[test]
fn seal_then_open_gives_the_packet_back() {
    let packet = [1u8, 2, 3, 4, 5];
    let plain = seal(&packet, None).unwrap_or_default();
    assert_eq!(plain.get(..4), Some(&[0, 0, MAGIC[0], MAGIC[1]][..]));
    assert_eq!(open(&plain, None, 1200), Ok(&packet[..]));

    let key = ClusterKey::from_bytes(&[9; 16]).ok();
    let keyed = seal(&packet, key.as_ref()).unwrap_or_default();
    assert_eq!(keyed.len(), packet.len() + OVERHEAD);
    assert_eq!(open(&keyed, key.as_ref(), 1200), Ok(&packet[..]));
    assert_eq!(
        open(&keyed, None, 1200),
        Err(MembershipError::UnexpectedAuth)
    );
    assert_eq!(
        open(&plain, key.as_ref(), 1200),
        Err(MembershipError::Unauthenticated)
    );
}

#[test]
fn open_refuses_what_is_not_a_membership_datagram() {
    let ok = seal(&[7u8; 10], None).unwrap_or_default();
    assert_eq!(
        open(&ok, None, ok.len() - 1),
        Err(MembershipError::TooLarge)
    );
    assert_eq!(open(&[], None, 1200), Err(MembershipError::NotMembership));
    assert_eq!(open(&[0], None, 1200), Err(MembershipError::NotMembership));
    assert_eq!(
        open(&[0, 0, b'S'], None, 1200),
        Err(MembershipError::NotMembership)
    );
    assert_eq!(
        open(&[0, 0, b'X', b'W'], None, 1200),
        Err(MembershipError::NotMembership)
    );
    assert_eq!(
        open(&[5, 0, b'S', b'W'], None, 1200),
        Err(MembershipError::NotMembership)
    );
    assert_eq!(
        open(&[0, 1, b'S', b'W'], None, 1200),
        Err(MembershipError::UnknownFlags)
    );
    // An empty packet is framed correctly (foca refuses it, not the framing).
    assert_eq!(open(&[0, 0, b'S', b'W'], None, 1200), Ok(&[][..]));
}
