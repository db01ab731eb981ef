//! What one connection hands to another: relayed offers and other ready-to-send messages.

use tokio::sync::{mpsc, oneshot};

use crate::id::Id20;

/// The way to reach a connected peer: the queue its connection task writes from.
pub type Route = mpsc::Sender<Delivery>;

/// A message for a connection to send to its client. Two variants of one pointer each keep it at
/// 16 bytes, which matters because every connection's queue reserves room for 32 of them.
#[derive(Debug)]
pub enum Delivery {
    /// A relayed answer: ready-made JSON text.
    Answer(Box<str>),
    /// A delivery that the receiving connection keeps track of.
    Tracked(Box<Tracked>),
}

/// What a connection keeps track of after sending it.
#[derive(Debug)]
pub enum Tracked {
    /// An offer from another peer; the receiving connection remembers it so that only an answer
    /// to it can travel back.
    Offer(OfferDelivery),
    /// A request to show the client is still there: the connection pings it and answers once
    /// the next frame of any kind arrives. Sent when another connection claims its `peer_id`.
    Probe(oneshot::Sender<()>),
}

/// A relayed offer and where its answer may go.
#[derive(Debug)]
pub struct OfferDelivery {
    /// The JSON text to send.
    pub json: String,
    /// The swarm.
    pub info_hash: Id20,
    /// The offering peer.
    pub from: Id20,
    /// The offer's id.
    pub offer_id: Id20,
    /// Where the answer goes.
    pub reply_to: ReplyTo,
}

/// The connection an answer goes back to.
#[derive(Debug)]
pub enum ReplyTo {
    /// The offering peer's connection on this replica.
    Local(Route),
    /// The offering peer's connection on another replica.
    Remote {
        /// The replica.
        replica: crate::cluster::ReplicaId,
        /// Its connection there.
        connection: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_two_words() {
        assert_eq!(std::mem::size_of::<Delivery>(), 16);
    }
}
