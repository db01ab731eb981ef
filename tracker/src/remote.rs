//! Delivers what other replicas relay to this one's peers: offers (remembered by the receiving
//! connection, so that only an answer to them travels back) and answers.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::cluster::BusMessage;
use crate::relay::{Delivery, OfferDelivery, ReplyTo, Tracked};
use crate::shared::Shared;

/// Messages from other replicas waiting to be delivered.
pub const INBOX: usize = 4096;

/// Delivers every message from `inbox` until it closes.
pub async fn deliver_all(shared: Arc<Shared>, mut inbox: mpsc::Receiver<BusMessage>) {
    while let Some(message) = inbox.recv().await {
        deliver(&shared, message);
    }
}

fn deliver(shared: &Shared, message: BusMessage) {
    let (kind, info_hash, to, delivery) = match message {
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
            ("offer", info_hash, (to, None), delivery)
        }
        BusMessage::Answer {
            info_hash,
            to,
            to_connection,
            json,
        } => {
            let delivery = Delivery::Answer(json.into_boxed_str());
            ("answer", info_hash, (to, Some(to_connection)), delivery)
        }
    };
    let (peer_id, connection) = to;
    let Some(owner) = shared.registry.owner(&info_hash, &peer_id) else {
        return;
    };
    if connection.is_some_and(|connection| connection != owner.connection) {
        return;
    }
    if owner.route.try_send(delivery).is_err() {
        shared.metrics.deliveries_dropped.inc();
        return;
    }
    shared
        .metrics
        .relayed_across_replicas
        .with_label_values(&[kind])
        .inc();
    if kind == "answer" {
        shared.metrics.answers_relayed.inc();
    }
}
