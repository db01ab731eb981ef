//! Acts on what other replicas send this one: offers for its peers (remembered by the receiving
//! connection, so that only an answer to them travels back), answers for its peers, and probes
//! of the connections that hold a peer id another replica's client claims.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::cluster::{BusMessage, ReplicaId};
use crate::connection::owner_is_gone;
use crate::id::Id20;
use crate::relay::{Delivery, OfferDelivery, ReplyTo, Tracked};
use crate::shared::Shared;

/// Messages from other replicas waiting to be handled.
pub const INBOX: usize = 4096;

/// Handles every message from `inbox` until it closes.
pub async fn deliver_all(shared: Arc<Shared>, mut inbox: mpsc::Receiver<BusMessage>) {
    while let Some(message) = inbox.recv().await {
        handle(&shared, message);
    }
}

fn handle(shared: &Arc<Shared>, message: BusMessage) {
    match message {
        BusMessage::Offer {
            info_hash,
            from,
            from_replica,
            from_connection,
            to,
            offer_id,
            json,
        } => {
            let offer = OfferDelivery {
                json,
                info_hash,
                from,
                offer_id,
                reply_to: ReplyTo::Remote {
                    replica: from_replica,
                    connection: from_connection,
                },
            };
            let delivery = Delivery::Tracked(Box::new(Tracked::Offer(offer)));
            deliver(shared, "offer", (info_hash, to, None), delivery);
        }
        BusMessage::Answer {
            info_hash,
            to,
            to_connection,
            json,
        } => {
            let delivery = Delivery::Answer(json.into_boxed_str());
            deliver(
                shared,
                "answer",
                (info_hash, to, Some(to_connection)),
                delivery,
            );
        }
        BusMessage::Probe {
            info_hash,
            peer_id,
            connection,
            probe,
            reply_to,
        } => {
            let shared = Arc::clone(shared);
            let asked = (info_hash, peer_id, connection, probe, reply_to);
            tokio::spawn(async move { answer_probe(&shared, asked).await });
        }
        BusMessage::ProbeReply { probe, gone } => {
            if let Some(cluster) = &shared.cluster {
                cluster.probe_answered(probe, gone);
            }
        }
    }
}

/// Hands `delivery` to the connection that holds peer `to` of swarm `info_hash` (and, for an
/// answer, only to the connection the offer came from).
fn deliver(
    shared: &Shared,
    kind: &'static str,
    (info_hash, to, connection): (Id20, Id20, Option<u64>),
    delivery: Delivery,
) {
    let Some(owner) = shared.registry.owner(&info_hash, &to) else {
        return;
    };
    if connection.is_some_and(|connection| connection != owner.connection) {
        return;
    }
    if owner.route.try_send(delivery).is_err() {
        shared.metrics.deliveries_dropped.inc();
        return;
    }
    let metrics = &shared.metrics;
    metrics
        .relayed_across_replicas
        .with_label_values(&[kind])
        .inc();
    if kind == "answer" {
        metrics.answers_relayed.inc();
    }
}

/// Probes this replica's connection that holds a peer id another replica's client claims; if
/// it is gone, it leaves the swarm here and in Redis. Answers the asking replica.
async fn answer_probe(shared: &Shared, asked: (Id20, Id20, u64, u64, ReplicaId)) {
    let (info_hash, peer_id, connection, probe, reply_to) = asked;
    let Some(cluster) = &shared.cluster else {
        return;
    };
    let holder = shared
        .registry
        .owner(&info_hash, &peer_id)
        .filter(|owner| owner.connection == connection);
    let gone = match holder {
        Some(owner) => owner_is_gone(&owner).await,
        None => true,
    };
    if gone {
        shared.registry.leave(&info_hash, &peer_id, connection);
        cluster.leave(&info_hash, &peer_id, connection).await;
        shared.metrics.peer_id_takeovers.inc();
    }
    cluster.send(reply_to, &BusMessage::ProbeReply { probe, gone });
}
