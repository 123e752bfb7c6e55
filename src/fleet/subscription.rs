//! A pub/sub subscription kept up in the background, reconnected with riprap's backoff.

use std::future::Future;
use std::sync::Weak;
use std::time::Duration;

use futures_util::StreamExt;

use super::events::{FleetEvent, Store};
use super::redis::Conn;
use crate::backoff::{Backoff, MakeBackoff};

/// What a subscriber does with its channel.
pub(crate) trait Subscriber: Send + Sync + 'static {
    fn conn(&self) -> &Conn;
    fn channel(&self) -> &str;
    /// Subscribed; `again` after a loss. Catch up on whatever may have been missed: the
    /// subscription is already in place, so nothing falls in between.
    fn subscribed(&self, again: bool) -> impl Future<Output = ()> + Send;
    fn message(&self, payload: &[u8]);
    /// The subscription was lost.
    fn lost(&self);
    fn set_subscribed(&self, on: bool);
}

/// Keep `me` subscribed until it is dropped. Holds it only while handling something, so
/// dropping the last handle ends the task at its next message or attempt.
pub(crate) async fn keep<T: Subscriber>(me: Weak<T>) {
    let Some(strong) = me.upgrade() else { return };
    let conn = strong.conn();
    let (client, channel, timeout) = (
        conn.client.clone(),
        strong.channel().to_owned(),
        conn.timeout,
    );
    let mut backoff = conn.reconnect.make_backoff();
    drop(strong);
    let mut again = false;
    loop {
        let connected = tokio::time::timeout(timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        if let Ok(Ok(pubsub)) = connected {
            let Some(strong) = me.upgrade() else { return };
            strong.subscribed(again).await;
            strong.set_subscribed(true);
            strong.conn().health.emit(FleetEvent::Subscribed {
                store: Store::Redis,
            });
            backoff.reset();
            drop(strong);
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let Some(strong) = me.upgrade() else { return };
                strong.message(msg.get_payload_bytes());
            }
            let Some(strong) = me.upgrade() else { return };
            strong.set_subscribed(false);
            strong.lost();
            strong.conn().health.emit(FleetEvent::SubscriptionLost {
                store: Store::Redis,
            });
            again = true;
        }
        let delay = backoff.next_delay().unwrap_or(Duration::from_secs(5));
        tokio::time::sleep(delay).await;
        if me.strong_count() == 0 {
            return;
        }
    }
}
