//! The binary peer wire protocol (see `PROTOCOL.md`): one message per data-channel message.
//!
//! Decoding never panics: every length is checked against the buffer and against the limits
//! below, and any inconsistency is a [`DecodeError`].

use thiserror::Error;

/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// The four bytes every handshake starts with.
pub const MAGIC: [u8; 4] = *b"P2PV";
/// Most availability entries one `Have` or `Lost` message may carry.
pub const MAX_ENTRIES: usize = 1024;
/// Largest segment size the protocol accepts (64 MiB).
pub const MAX_SEGMENT_SIZE: u32 = 64 << 20;
/// Bytes a `Data` message adds in front of its payload.
pub const DATA_HEADER_LEN: usize = 1 + 8 + 4;

/// Capability flag: the sender uploads segments to others.
const FLAG_UPLOADS: u8 = 1;

/// One peer wire message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// First message on a channel, both ways.
    Handshake {
        /// Protocol version of the sender.
        version: u8,
        /// Whether the sender serves requests (false: download-only).
        uploads: bool,
        /// Upload capacity the sender offers, bytes per second (0: unknown / unlimited).
        upload_capacity: u32,
    },
    /// The sender now holds these segments (sequence number, size in bytes).
    Have(Vec<(u64, u32)>),
    /// The sender no longer holds these segments.
    Lost(Vec<u64>),
    /// Ask for `length` bytes of segment `seq` starting at `offset`.
    Request {
        /// Segment sequence number.
        seq: u64,
        /// First byte wanted.
        offset: u32,
        /// Number of bytes wanted.
        length: u32,
    },
    /// A chunk of a segment.
    Data {
        /// Segment sequence number.
        seq: u64,
        /// Offset of the first payload byte in the segment.
        offset: u32,
        /// The bytes.
        payload: &'a [u8],
    },
    /// Stop sending anything more of segment `seq`.
    Cancel {
        /// Segment sequence number.
        seq: u64,
    },
    /// The sender will not serve segment `seq` (it does not have it or does not upload).
    Absent {
        /// Segment sequence number.
        seq: u64,
    },
    /// The sender's CDN-pull ticket, sent once after the handshake by a peer that uploads. For
    /// each new live segment nobody holds yet, the peers whose tickets rank lowest for that
    /// segment (see [`pull_rank`]) among a neighbourhood pull it from the CDN; the others wait
    /// for it from peers.
    Ticket(u64),
}

/// Where a peer holding `ticket` ranks for pulling live segment `seq` from the CDN (lowest
/// first): a 64-bit mix of both, so each segment elects different peers.
pub fn pull_rank(ticket: u64, seq: u64) -> u64 {
    // SplitMix64's finaliser over the ticket combined with the sequence number.
    let mut z = ticket ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// TEST ONLY (the drivers' corrupt-upload modes, which test integrity end to end): `message`
/// with every payload byte of a `Data` message flipped; any other message unchanged.
pub fn with_flipped_payload(message: &[u8]) -> Vec<u8> {
    match Message::decode(message) {
        Ok(Message::Data {
            seq,
            offset,
            payload,
        }) => {
            let flipped: Vec<u8> = payload.iter().map(|b| !b).collect();
            Message::Data {
                seq,
                offset,
                payload: &flipped,
            }
            .encode()
        }
        _ => message.to_vec(),
    }
}

/// Why a byte string is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The message is empty.
    #[error("empty message")]
    Empty,
    /// The message ends before its fields do.
    #[error("message type {0:#04x} is truncated")]
    Truncated(u8),
    /// The message has bytes after its last field.
    #[error("message type {0:#04x} has trailing bytes")]
    Trailing(u8),
    /// A handshake without the protocol's magic bytes.
    #[error("handshake lacks the P2PV magic")]
    BadMagic,
    /// A count or size above the protocol's limits.
    #[error("message type {0:#04x} exceeds a protocol limit")]
    OverLimit(u8),
    /// A message type this version does not know.
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
}

const T_HANDSHAKE: u8 = 0x01;
const T_HAVE: u8 = 0x02;
const T_LOST: u8 = 0x03;
const T_REQUEST: u8 = 0x04;
const T_DATA: u8 = 0x05;
const T_CANCEL: u8 = 0x06;
const T_ABSENT: u8 = 0x07;
const T_TICKET: u8 = 0x08;

impl Message<'_> {
    /// Encodes the message into a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        match self {
            Message::Handshake {
                version,
                uploads,
                upload_capacity,
            } => {
                out.push(T_HANDSHAKE);
                out.extend_from_slice(&MAGIC);
                out.push(*version);
                out.push(if *uploads { FLAG_UPLOADS } else { 0 });
                out.extend_from_slice(&upload_capacity.to_be_bytes());
            }
            Message::Have(entries) => {
                out.push(T_HAVE);
                out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
                for (seq, size) in entries {
                    out.extend_from_slice(&seq.to_be_bytes());
                    out.extend_from_slice(&size.to_be_bytes());
                }
            }
            Message::Lost(seqs) => {
                out.push(T_LOST);
                out.extend_from_slice(&(seqs.len() as u16).to_be_bytes());
                for seq in seqs {
                    out.extend_from_slice(&seq.to_be_bytes());
                }
            }
            Message::Request {
                seq,
                offset,
                length,
            } => {
                out.push(T_REQUEST);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(&length.to_be_bytes());
            }
            Message::Data {
                seq,
                offset,
                payload,
            } => {
                out.push(T_DATA);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(payload);
            }
            Message::Cancel { seq } => {
                out.push(T_CANCEL);
                out.extend_from_slice(&seq.to_be_bytes());
            }
            Message::Absent { seq } => {
                out.push(T_ABSENT);
                out.extend_from_slice(&seq.to_be_bytes());
            }
            Message::Ticket(ticket) => {
                out.push(T_TICKET);
                out.extend_from_slice(&ticket.to_be_bytes());
            }
        }
        out
    }

    fn encoded_len(&self) -> usize {
        match self {
            Message::Handshake { .. } => 11,
            Message::Have(e) => 3 + 12 * e.len(),
            Message::Lost(s) => 3 + 8 * s.len(),
            Message::Request { .. } => 17,
            Message::Data { payload, .. } => DATA_HEADER_LEN + payload.len(),
            Message::Cancel { .. } | Message::Absent { .. } | Message::Ticket(_) => 9,
        }
    }

    /// Decodes one message; any malformed input is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Message<'_>, DecodeError> {
        let (&kind, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
        let mut r = Reader { rest, kind };
        let message = match kind {
            T_HANDSHAKE => {
                if r.take(4)? != MAGIC {
                    return Err(DecodeError::BadMagic);
                }
                let version = r.u8()?;
                let flags = r.u8()?;
                Message::Handshake {
                    version,
                    uploads: flags & FLAG_UPLOADS != 0,
                    upload_capacity: r.u32()?,
                }
            }
            T_HAVE => {
                let count = r.count()?;
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    let seq = r.u64()?;
                    let size = r.u32()?;
                    if size == 0 || size > MAX_SEGMENT_SIZE {
                        return Err(DecodeError::OverLimit(kind));
                    }
                    entries.push((seq, size));
                }
                Message::Have(entries)
            }
            T_LOST => {
                let count = r.count()?;
                let mut seqs = Vec::with_capacity(count);
                for _ in 0..count {
                    seqs.push(r.u64()?);
                }
                Message::Lost(seqs)
            }
            T_REQUEST => {
                let seq = r.u64()?;
                let offset = r.u32()?;
                let length = r.u32()?;
                if length == 0
                    || u64::from(offset) + u64::from(length) > u64::from(MAX_SEGMENT_SIZE)
                {
                    return Err(DecodeError::OverLimit(kind));
                }
                Message::Request {
                    seq,
                    offset,
                    length,
                }
            }
            T_DATA => {
                let seq = r.u64()?;
                let offset = r.u32()?;
                let payload = std::mem::take(&mut r.rest);
                if payload.is_empty()
                    || u64::from(offset) + payload.len() as u64 > u64::from(MAX_SEGMENT_SIZE)
                {
                    return Err(DecodeError::OverLimit(kind));
                }
                Message::Data {
                    seq,
                    offset,
                    payload,
                }
            }
            T_CANCEL => Message::Cancel { seq: r.u64()? },
            T_ABSENT => Message::Absent { seq: r.u64()? },
            T_TICKET => Message::Ticket(r.u64()?),
            other => return Err(DecodeError::UnknownType(other)),
        };
        if !r.rest.is_empty() {
            return Err(DecodeError::Trailing(kind));
        }
        Ok(message)
    }
}

/// Bounds-checked big-endian reader over a message body.
struct Reader<'a> {
    rest: &'a [u8],
    kind: u8,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated(self.kind));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn count(&mut self) -> Result<usize, DecodeError> {
        let mut b = [0; 2];
        b.copy_from_slice(self.take(2)?);
        let count = usize::from(u16::from_be_bytes(b));
        if count > MAX_ENTRIES {
            return Err(DecodeError::OverLimit(self.kind));
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_message() -> impl Strategy<Value = Message<'static>> {
        prop_oneof![
            (any::<u8>(), any::<bool>(), any::<u32>()).prop_map(|(version, uploads, cap)| {
                Message::Handshake {
                    version,
                    uploads,
                    upload_capacity: cap,
                }
            }),
            prop::collection::vec((any::<u64>(), 1..=MAX_SEGMENT_SIZE), 0..20)
                .prop_map(Message::Have),
            prop::collection::vec(any::<u64>(), 0..20).prop_map(Message::Lost),
            (any::<u64>(), 0..1000u32, 1..1000u32).prop_map(|(seq, offset, length)| {
                Message::Request {
                    seq,
                    offset,
                    length,
                }
            }),
            (
                any::<u64>(),
                0..1000u32,
                prop::collection::vec(any::<u8>(), 1..64)
            )
                .prop_map(|(seq, offset, payload)| Message::Data {
                    seq,
                    offset,
                    payload: Vec::leak(payload),
                }),
            any::<u64>().prop_map(|seq| Message::Cancel { seq }),
            any::<u64>().prop_map(|seq| Message::Absent { seq }),
            any::<u64>().prop_map(Message::Ticket),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(message in any_message()) {
            let bytes = message.encode();
            prop_assert_eq!(Message::decode(&bytes), Ok(message));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn decoding_mutated_messages_never_panics(message in any_message(), cut in any::<usize>(), flip in any::<(usize, u8)>()) {
            let mut bytes = message.encode();
            let at = flip.0 % bytes.len();
            bytes[at] ^= flip.1;
            let _ = Message::decode(&bytes);
            bytes.truncate(cut % (bytes.len() + 1));
            let _ = Message::decode(&bytes);
        }
    }

    #[test]
    fn limits_are_enforced() {
        let mut have = vec![T_HAVE];
        have.extend_from_slice(&((MAX_ENTRIES + 1) as u16).to_be_bytes());
        assert_eq!(Message::decode(&have), Err(DecodeError::OverLimit(T_HAVE)));
        let request = Message::Request {
            seq: 1,
            offset: MAX_SEGMENT_SIZE,
            length: 1,
        };
        assert_eq!(
            Message::decode(&request.encode()),
            Err(DecodeError::OverLimit(T_REQUEST))
        );
        assert_eq!(
            Message::decode(&[0x7f]),
            Err(DecodeError::UnknownType(0x7f))
        );
        let mut cancel = Message::Cancel { seq: 3 }.encode();
        cancel.push(0);
        assert_eq!(
            Message::decode(&cancel),
            Err(DecodeError::Trailing(T_CANCEL))
        );
    }
}
