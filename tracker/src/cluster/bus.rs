//! Messages between replicas: each replica subscribes to its own Redis channel, and a replica
//! that relays to a peer held elsewhere publishes to the channel of exactly that replica.

use std::time::Duration;

use futures_util::StreamExt;
use redis::Client;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::id::Id20;

use super::ReplicaId;

/// The channel a replica listens on.
pub fn channel(replica: ReplicaId) -> String {
    format!("p2pvd:relay:{replica}")
}

/// What one replica asks of another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
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
        match serde_json::from_slice::<BusMessage>(message.get_payload_bytes()) {
            // A full inbox drops the message, as a full connection queue does.
            Ok(message) => drop(inbox.try_send(message)),
            Err(error) => tracing::warn!(%error, "unreadable message from another replica"),
        }
    }
    tracing::warn!(channel, "the relay subscription ended; subscribing again");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_their_encoding_with_any_id_bytes() {
        let message = BusMessage::Offer {
            info_hash: Id20(std::array::from_fn(|i| i as u8)),
            from: Id20([0xff; 20]),
            from_replica: 12,
            from_connection: 3,
            to: Id20([b'"'; 20]),
            offer_id: Id20([0; 20]),
            json: "{\"offer\":1}".into(),
        };
        let text = serde_json::to_vec(&message).unwrap();
        assert_eq!(
            serde_json::from_slice::<BusMessage>(&text).unwrap(),
            message
        );
    }
}
