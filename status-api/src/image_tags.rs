//! Which image each image reference in use names now, for the `stale_image` drift: a container created from
//! `app:1` runs the image `app:1` named then; when `app:1` is pulled or built again, the tag moves and the
//! container does not. The watch asks the engine (`GET /images/{reference}/json`) for every reference the
//! containers in scope were created from, again on every image event (`tag`, `untag`, `pull`, `load`,
//! `delete`, …) so a moved tag shows within milliseconds, for a new reference as soon as a container
//! created from it shows, and once every resync interval as a safety net. It owns the store's
//! [`ImageTagsWriter`] and never changes anything on the host.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::{FutureExt, StreamExt};
use shared::backoff::Backoff;
use shared::error_chain;
use tokio::sync::watch;

use crate::docker::{unix_seconds, EngineError, EngineReader};
use crate::store::{ImageTags, ImageTagsWriter};

/// How many image lookups run at once.
const LOOKUP_CONCURRENCY: usize = 8;

/// The image tag watch: the engine's image events on one side, the store's image tags on the other.
#[derive(Debug)]
pub struct ImageTagWatch {
    engine: Arc<dyn EngineReader>,
    writer: ImageTagsWriter,
    /// How often every reference is looked up again, events or not.
    resync_interval: Duration,
}

impl ImageTagWatch {
    pub fn new(
        engine: Arc<dyn EngineReader>,
        writer: ImageTagsWriter,
        resync_interval: Duration,
    ) -> Self {
        Self {
            engine,
            writer,
            resync_interval,
        }
    }

    /// Follows the engine's image events until `shutdown` turns true; on a lost stream, backs off (jittered,
    /// capped) and starts over with every reference looked up again.
    pub async fn watch(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        loop {
            let outcome = tokio::select! {
                outcome = self.follow(&mut backoff) => outcome,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let reason = match outcome {
                Ok(()) => "the engine closed the image event stream".to_owned(),
                Err(err) => error_chain(&err),
            };
            let delay = backoff.fail(Instant::now(), rand::random::<f64>());
            tracing::warn!(reason = %reason, retry_in = ?delay, "lost the engine's image events; will look every image up again");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// One image event stream's life: returns when it ends or fails.
    async fn follow(&self, backoff: &mut Backoff) -> Result<(), EngineError> {
        let since = SystemTime::now() - Duration::from_secs(1);
        let mut events = self.engine.image_events(Some(unix_seconds(since)));
        let store = self.writer.store();
        let mut revisions = store.subscribe();
        let mut tags = ImageTags::new();
        self.look_up(&mut tags, true).await;
        let mut safety = tokio::time::interval_at(
            tokio::time::Instant::now() + self.resync_interval,
            self.resync_interval,
        );
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => {
                        if backoff.failures() > 0 {
                            backoff.reset();
                        }
                        tracing::debug!(action = event.action.as_deref().unwrap_or_default(), "image event");
                        // A build or a pull sends several at once: one look for all that already came.
                        while let Some(Some(Ok(_))) = events.next().now_or_never() {}
                        self.look_up(&mut tags, true).await;
                    }
                    Some(Err(err)) => return Err(err),
                    None => return Ok(()),
                },
                changed = revisions.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    self.look_up(&mut tags, false).await;
                }
                _ = safety.tick() => self.look_up(&mut tags, true).await,
            }
        }
    }

    /// Looks up the references in use — all of them when `again`, else only those not looked up yet — and
    /// publishes the result. A lookup that fails keeps what was known: the engine's trouble shows in the
    /// container watch and `/ready`, not as a moved tag.
    async fn look_up(&self, tags: &mut ImageTags, again: bool) {
        let in_use: BTreeSet<String> = self.writer.store().image_references();
        tags.retain(|reference, _| in_use.contains(reference));
        let wanted: Vec<String> = in_use
            .into_iter()
            .filter(|reference| again || !tags.contains_key(reference))
            .collect();
        if wanted.is_empty() && !again {
            return;
        }
        let engine = self.engine.as_ref();
        let found: Vec<(String, Result<Option<String>, EngineError>)> =
            futures::stream::iter(wanted)
                .map(|reference| async move {
                    let id = engine.image_id(&reference).await;
                    (reference, id)
                })
                .buffer_unordered(LOOKUP_CONCURRENCY)
                .collect()
                .await;
        for (reference, id) in found {
            match id {
                Ok(id) => {
                    tags.insert(reference, id);
                }
                Err(err) => {
                    tracing::debug!(image = %reference, error = %error_chain(&err), "image lookup failed");
                }
            }
        }
        self.writer.set(tags);
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::Example;
    use shared::ContainerStatus;

    use super::*;
    use crate::docker::fake::FakeEngine;
    use crate::store::Writer;

    const OLD: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    const NEW: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000002";

    /// The `tag_image_id` the view shows for `web`, once it is `wanted`, within a (paused-time) second.
    async fn shows(writer: &Writer, wanted: Option<&str>) {
        let store = writer.store();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let view = store.view();
            let shown = view.containers[0].tag_image_id.clone();
            if shown.as_deref() == wanted {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "shows {shown:?}, not {wanted:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_moved_tag_shows_at_its_event_and_a_new_reference_as_its_container_shows() {
        let engine = FakeEngine::new();
        engine.tag_image("app:1", OLD);
        let writer = Writer::new(None, Duration::from_secs(300), watch::channel(None).1);
        let watch = ImageTagWatch::new(
            Arc::new(engine.clone()),
            writer.image_tags(),
            Duration::from_secs(300),
        );
        let (_stop, stop) = watch::channel(false);
        tokio::spawn(watch.watch(stop));

        let mut web = ContainerStatus::example();
        web.image = "app:1".to_owned();
        web.image_id = OLD.to_owned();
        writer.apply(web.id.clone(), Some(web.clone()));
        shows(&writer, Some(OLD)).await;

        let lookups = engine.image_lookups();
        engine.tag_image("app:1", NEW);
        shows(&writer, Some(NEW)).await;
        assert!(engine.image_lookups() > lookups);

        // Created from an id: never looked up, never stale.
        let mut from_id = web;
        from_id.image = OLD.to_owned();
        writer.apply(from_id.id.clone(), Some(from_id));
        shows(&writer, None).await;
    }
}
