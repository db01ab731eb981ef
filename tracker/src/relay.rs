//! What one connection hands to another: relayed offers and other ready-to-send messages.

use tokio::sync::mpsc;

use crate::id::Id20;

/// The way to reach a connected peer: the queue its connection task writes from.
pub type Route = mpsc::Sender<Delivery>;

/// A message for a connection to send to its client. Boxed so that queues stay small.
#[derive(Debug)]
pub enum Delivery {
    /// An offer from another peer; the receiving connection remembers it so that only an answer
    /// to it can travel back.
    Offer(Box<OfferDelivery>),
    /// Any other ready-made JSON text (answers).
    Message(Box<str>),
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
    /// The offering peer's connection.
    pub reply_to: Route,
}
