//! Messages between replicas: each replica subscribes to its own Redis channel, and a replica
//! that relays to a peer held elsewhere publishes to the channel of exactly that replica.

use std::time::Duration;

use futures_util::StreamExt;
use redis::Client;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::id::Id20;

use super::ReplicaId;

/// The channel a replica listens on.
pub fn channel(replica: ReplicaId) -> String {
    format!("p2pvd:relay:{replica}")
}

/// What one replica asks of another.
#[derive(Debug, Clone, PartialEq)]
pub enum BusMessage {
    /// An offer for a peer the receiving replica holds.
    Offer {
        /// The swarm.
        info_hash: Id20,
        /// The offering peer.
        from: Id20,
        /// The replica holding the offering peer, where its answer goes.
        from_replica: ReplicaId,
        /// The offering peer's connection there.
        from_connection: u64,
        /// The receiving peer.
        to: Id20,
        /// The offer's id.
        offer_id: Id20,
        /// The relayed offer, ready to send.
        json: String,
    },
    /// An answer for a peer the receiving replica holds.
    Answer {
        /// The swarm.
        info_hash: Id20,
        /// The offering peer the answer goes to.
        to: Id20,
        /// Its connection (an answer never reaches a later connection with the same peer id).
        to_connection: u64,
        /// The relayed answer, ready to send.
        json: String,
    },
    /// Asks the replica holding a peer id whether its connection is still there (another
    /// replica's client announced the same peer id).
    Probe {
        /// The swarm.
        info_hash: Id20,
        /// The contested peer id.
        peer_id: Id20,
        /// The connection holding it on the receiving replica.
        connection: u64,
        /// Names this probe in the reply.
        probe: u64,
        /// Where the reply goes.
        reply_to: ReplicaId,
    },
    /// The answer to a [`BusMessage::Probe`].
    ProbeReply {
        /// The probe.
        probe: u64,
        /// The connection is gone and has left the swarm: the peer id is free.
        gone: bool,
    },
}

const OFFER: u8 = 1;
const ANSWER: u8 = 2;
const PROBE: u8 = 3;
const PROBE_REPLY: u8 = 4;

impl BusMessage {
    /// The published form: a kind byte, the ids and numbers at fixed widths, then the relayed
    /// JSON as it is (no second escaping of the SDP).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.json().len());
        match self {
            Self::Offer {
                info_hash,
                from,
                from_replica,
                from_connection,
                to,
                offer_id,
                json,
            } => {
                out.push(OFFER);
                for id in [info_hash, from, to, offer_id] {
                    out.extend_from_slice(&id.0);
                }
                out.extend_from_slice(&from_replica.to_le_bytes());
                out.extend_from_slice(&from_connection.to_le_bytes());
                out.extend_from_slice(json.as_bytes());
            }
            Self::Answer {
                info_hash,
                to,
                to_connection,
                json,
            } => {
                out.push(ANSWER);
                out.extend_from_slice(&info_hash.0);
                out.extend_from_slice(&to.0);
                out.extend_from_slice(&to_connection.to_le_bytes());
                out.extend_from_slice(json.as_bytes());
            }
            Self::Probe {
                info_hash,
                peer_id,
                connection,
                probe,
                reply_to,
            } => {
                out.push(PROBE);
                out.extend_from_slice(&info_hash.0);
                out.extend_from_slice(&peer_id.0);
                for number in [connection, probe, reply_to] {
                    out.extend_from_slice(&number.to_le_bytes());
                }
            }
            Self::ProbeReply { probe, gone } => {
                out.push(PROBE_REPLY);
                out.extend_from_slice(&probe.to_le_bytes());
                out.push(u8::from(*gone));
            }
        }
        out
    }

    /// Reads the published form; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&kind, mut rest) = bytes.split_first()?;
        let mut id = || -> Option<Id20> {
            let (head, tail) = rest.split_at_checked(20)?;
            rest = tail;
            Some(Id20(head.try_into().ok()?))
        };
        match kind {
            OFFER => {
                let (info_hash, from, to, offer_id) = (id()?, id()?, id()?, id()?);
                let (numbers, json) = rest.split_at_checked(16)?;
                Some(Self::Offer {
                    info_hash,
                    from,
                    to,
                    offer_id,
                    from_replica: u64::from_le_bytes(numbers[..8].try_into().ok()?),
                    from_connection: u64::from_le_bytes(numbers[8..].try_into().ok()?),
                    json: String::from_utf8(json.to_vec()).ok()?,
                })
            }
            ANSWER => {
                let (info_hash, to) = (id()?, id()?);
                let (number, json) = rest.split_at_checked(8)?;
                Some(Self::Answer {
                    info_hash,
                    to,
                    to_connection: u64::from_le_bytes(number.try_into().ok()?),
                    json: String::from_utf8(json.to_vec()).ok()?,
                })
            }
            PROBE => {
                let (info_hash, peer_id) = (id()?, id()?);
                let number =
                    |at: usize| Some(u64::from_le_bytes(rest.get(at..at + 8)?.try_into().ok()?));
                (rest.len() == 24).then_some(())?;
                Some(Self::Probe {
                    info_hash,
                    peer_id,
                    connection: number(0)?,
                    probe: number(8)?,
                    reply_to: number(16)?,
                })
            }
            PROBE_REPLY => {
                let (number, gone) = rest.split_at_checked(8)?;
                Some(Self::ProbeReply {
                    probe: u64::from_le_bytes(number.try_into().ok()?),
                    gone: match gone {
                        [0] => false,
                        [1] => true,
                        _ => return None,
                    },
                })
            }
            _ => None,
        }
    }

    fn json(&self) -> &str {
        match self {
            Self::Offer { json, .. } | Self::Answer { json, .. } => json,
            Self::Probe { .. } | Self::ProbeReply { .. } => "",
        }
    }
}

/// Receives the messages published to `channel` and hands them to `inbox`, until `shutdown`.
/// Reconnects (and subscribes again) whenever the subscriber connection breaks.
pub async fn subscribe(
    client: Client,
    channel: String,
    inbox: mpsc::Sender<BusMessage>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = listen(&client, &channel, &inbox) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// One subscriber connection's life.
async fn listen(client: &Client, channel: &str, inbox: &mpsc::Sender<BusMessage>) {
    let mut pubsub = match client.get_async_pubsub().await {
        Ok(pubsub) => pubsub,
        Err(error) => return tracing::debug!(%error, "cannot open the Redis subscriber"),
    };
    if let Err(error) = pubsub.subscribe(channel).await {
        return tracing::debug!(%error, "cannot subscribe to the relay channel");
    }
    tracing::info!(channel, "subscribed to the relay channel");
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        match BusMessage::decode(message.get_payload_bytes()) {
            // A full inbox drops the message, as a full connection queue does.
            Some(message) => drop(inbox.try_send(message)),
            None => tracing::warn!("unreadable message from another replica"),
        }
    }
    tracing::warn!(channel, "the relay subscription ended; subscribing again");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_their_encoding_and_truncation_is_refused() {
        let offer = BusMessage::Offer {
            info_hash: Id20(std::array::from_fn(|i| i as u8)),
            from: Id20([0xff; 20]),
            from_replica: 12,
            from_connection: 3,
            to: Id20([b'"'; 20]),
            offer_id: Id20([0; 20]),
            json: "{\"offer\":\"é\"}".into(),
        };
        let answer = BusMessage::Answer {
            info_hash: Id20([1; 20]),
            to: Id20([2; 20]),
            to_connection: u64::MAX,
            json: String::new(),
        };
        let probe = BusMessage::Probe {
            info_hash: Id20([3; 20]),
            peer_id: Id20([4; 20]),
            connection: 5,
            probe: 6,
            reply_to: 7,
        };
        let reply = BusMessage::ProbeReply {
            probe: 8,
            gone: true,
        };
        assert_eq!(BusMessage::decode(&reply.encode()), Some(reply));
        for message in [offer, answer, probe] {
            let bytes = message.encode();
            assert_eq!(BusMessage::decode(&bytes), Some(message));
            assert_eq!(BusMessage::decode(&bytes[..30]), None);
        }
        assert_eq!(BusMessage::decode(&[9; 100]), None);
        assert_eq!(BusMessage::decode(&[]), None);
    }
}
