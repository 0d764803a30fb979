//! `/status?all=true` decoded only where it changed. status-api answers every container on every revision
//! (about 700 bytes each, 14 MB at 20,000), and decoding all of them was most of a controller's pass. The
//! answer is read as it arrived, each container as its own bytes; a container whose bytes are the ones the
//! last answer held is the container decoded then, shared through its `Arc`, and only the others are decoded.
//! Same bytes, same container: nothing is inferred from a revision, a name or a time, so what the plan sees
//! is always exactly what this answer says.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use shared::{ContainerStatus, Engine, StatusResponse};

use crate::model::StatusAnswer;

/// An answer and the body it was read from, with each container's bytes in that body beside it.
pub(super) struct ReadStatus {
    body: Bytes,
    answer: StatusAnswer,
    /// `answer.containers[i]` was decoded from `spans[i]`: a slice of a body, not a copy.
    spans: Vec<Bytes>,
}

impl std::fmt::Debug for ReadStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadStatus")
            .field("body_bytes", &self.body.len())
            .field("revision", &self.answer.status.revision)
            .field("containers", &self.spans.len())
            .finish()
    }
}

/// `StatusResponse` with its containers left as they are written. Converted field by field, so a field
/// added to `StatusResponse` does not compile until it is read here too.
#[derive(Deserialize)]
struct RawAnswer<'a> {
    revision: u64,
    observed_at: DateTime<Utc>,
    snapshot_taken_at: Option<DateTime<Utc>>,
    scope: Option<String>,
    events_live: bool,
    #[serde(default)]
    engine: Option<Engine>,
    resync_interval_seconds: u64,
    server_container_id: Option<String>,
    #[serde(default)]
    engine_reachable: bool,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    not_ready_reason: Option<String>,
    #[serde(default)]
    event_backlog: u64,
    #[serde(default)]
    event_lag_seconds: f64,
    #[serde(borrow)]
    containers: Vec<&'a RawValue>,
}

impl ReadStatus {
    /// The answer in `body`. Containers whose bytes `last` held are taken from it; the rest are decoded.
    pub(super) fn decode(body: Bytes, last: Option<&Self>) -> Result<Self, serde_json::Error> {
        let raw: RawAnswer<'_> = serde_json::from_slice(&body)?;
        let (old_spans, old): (&[Bytes], &[Arc<ContainerStatus>]) =
            last.map_or((&[], &[]), |last| (&last.spans, &last.answer.containers));
        let mut spans = Vec::with_capacity(raw.containers.len());
        let mut containers = Vec::with_capacity(raw.containers.len());
        // Where the walk is in the last answer. Both are in name order, so an unchanged container is found
        // where the walk is, or one further when the one before it went away.
        let mut at = 0;
        for written in &raw.containers {
            let span = body.slice_ref(written.get().as_bytes());
            let unchanged = (at..old.len().min(at + 2)).find(|&k| old_spans[k] == span);
            let container = match unchanged {
                Some(k) => {
                    at = k + 1;
                    old[k].clone()
                }
                None => {
                    let container: ContainerStatus = serde_json::from_str(written.get())?;
                    // Passed over: the last answer's containers that sort up to this one (it changed them,
                    // or they went away).
                    while old.get(at).is_some_and(|o| o.name <= container.name) {
                        at += 1;
                    }
                    Arc::new(container)
                }
            };
            spans.push(span);
            containers.push(container);
        }
        let status = StatusResponse {
            revision: raw.revision,
            observed_at: raw.observed_at,
            snapshot_taken_at: raw.snapshot_taken_at,
            scope: raw.scope,
            events_live: raw.events_live,
            engine: raw.engine,
            resync_interval_seconds: raw.resync_interval_seconds,
            server_container_id: raw.server_container_id,
            engine_reachable: raw.engine_reachable,
            ready: raw.ready,
            not_ready_reason: raw.not_ready_reason,
            event_backlog: raw.event_backlog,
            event_lag_seconds: raw.event_lag_seconds,
            containers: Vec::new(),
        };
        Ok(Self {
            answer: StatusAnswer { status, containers },
            spans,
            body,
        })
    }

    /// Whether this was read from `body`: then it is `body`'s answer, nothing to decode.
    pub(super) fn read_from(&self, body: &Bytes) -> bool {
        self.body == *body
    }

    pub(super) fn answer(&self) -> &StatusAnswer {
        &self.answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{ContainerState, EngineKind, Health};

    fn container(name: &str, state: ContainerState) -> ContainerStatus {
        ContainerStatus {
            id: format!("{name}-id"),
            name: name.into(),
            image: "busybox:latest".into(),
            image_id: "sha256:1".into(),
            state,
            health: Health::None,
            exit_code: (state == ContainerState::Exited).then_some(137),
            restart_count: 2,
            created_at: Some(at(0)),
            started_at: None,
            finished_at: None,
            labels: [("team".to_owned(), "web".to_owned())].into(),
            ports: Vec::new(),
            in_snapshot: true,
            policy: Default::default(),
            shares: Default::default(),
            settling: false,
            restart_policy: None,
            exit_cause: None,
            spec_changes: Vec::new(),
            tag_image_id: None,
            spec: None,
        }
    }

    /// A second past a fixed moment: the same answer is the same bytes.
    fn at(seconds: u64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_000_000 + i64::try_from(seconds).expect("small"), 0)
            .expect("a valid time")
    }

    /// An answer with every field set to something other than its default.
    fn body(revision: u64, containers: &[ContainerStatus]) -> Bytes {
        let status = StatusResponse {
            revision,
            observed_at: at(revision),
            snapshot_taken_at: Some(at(0)),
            scope: Some("team=web".into()),
            events_live: true,
            engine: Some(Engine {
                kind: EngineKind::Docker,
                version: "20.10.24".into(),
                api_version: "1.41".into(),
            }),
            resync_interval_seconds: 45,
            server_container_id: Some("f".repeat(64)),
            engine_reachable: true,
            ready: false,
            not_ready_reason: Some("events: event stream not connected".into()),
            event_backlog: 3,
            event_lag_seconds: 0.25,
            containers: containers.to_vec(),
        };
        Bytes::from(serde_json::to_vec(&status).expect("serialises"))
    }

    /// What `StatusResponse` itself decodes `body` to, as the controller holds it.
    fn plain(body: &Bytes) -> StatusAnswer {
        serde_json::from_slice::<StatusResponse>(body)
            .expect("decodes")
            .into()
    }

    /// Whether `answer`'s container `i` is the very one `last` held at `k`.
    fn shared_with(answer: &ReadStatus, i: usize, last: &ReadStatus, k: usize) -> bool {
        Arc::ptr_eq(&answer.answer.containers[i], &last.answer.containers[k])
    }

    #[test]
    fn every_field_is_read_as_status_response_reads_it() {
        let answer = body(7, &[container("a", ContainerState::Running)]);
        let read = ReadStatus::decode(answer.clone(), None).expect("decodes");
        assert_eq!(read.answer(), &plain(&answer));
        // Fields an older status-api leaves out take the same defaults.
        let older = br#"{"revision":2,"observed_at":"2026-12-01T10:00:00Z","snapshot_taken_at":null,"scope":null,"events_live":true,"resync_interval_seconds":30,"server_container_id":null,"containers":[]}"#;
        let older = Bytes::from_static(older);
        assert_eq!(
            ReadStatus::decode(older.clone(), None)
                .expect("decodes")
                .answer(),
            &plain(&older)
        );
    }

    /// Each change of one container is decoded, the others shared; whatever changed, the answer is the one a
    /// whole decode gives.
    #[test]
    fn only_changed_containers_are_decoded_again() {
        let running = |name: &str| container(name, ContainerState::Running);
        let first: Vec<_> = ["a", "b", "c", "d", "e"].map(running).to_vec();
        let read = ReadStatus::decode(body(1, &first), None).expect("decodes");

        let again = body(1, &first);
        let same = ReadStatus::decode(again, Some(&read)).expect("decodes");
        assert!(
            (0..5).all(|i| shared_with(&same, i, &read, i)),
            "same bytes"
        );

        // c stopped; a new revision.
        let mut changed = first.clone();
        changed[2] = container("c", ContainerState::Exited);
        let next = ReadStatus::decode(body(2, &changed), Some(&read)).expect("decodes");
        assert_eq!(next.answer(), &plain(&body(2, &changed)));
        assert!([0, 1, 3, 4]
            .iter()
            .all(|&i| shared_with(&next, i, &read, i)));
        assert!(!shared_with(&next, 2, &read, 2), "c was decoded again");

        // b went away, bb came.
        let moved = vec![
            first[0].clone(),
            container("bb", ContainerState::Created),
            changed[2].clone(),
            first[3].clone(),
            first[4].clone(),
        ];
        let after = ReadStatus::decode(body(3, &moved), Some(&next)).expect("decodes");
        assert_eq!(after.answer(), &plain(&body(3, &moved)));
        assert!(shared_with(&after, 0, &next, 0));
        assert!(shared_with(&after, 2, &next, 2), "c after a new neighbour");
        assert!(shared_with(&after, 3, &next, 3) && shared_with(&after, 4, &next, 4));

        // a went away: everything after it is found one further on.
        let fewer = &moved[1..];
        let last = ReadStatus::decode(body(4, fewer), Some(&after)).expect("decodes");
        assert_eq!(last.answer(), &plain(&body(4, fewer)));
        assert!((0..4).all(|i| shared_with(&last, i, &after, i + 1)));
    }

    /// Answers in any order, with names repeated and containers changed at random, always decode to what
    /// a whole decode gives.
    #[test]
    fn any_sequence_of_answers_reads_as_a_whole_decode() {
        let mut seed: u64 = 0x5eed;
        let mut next = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        let states = [
            ContainerState::Running,
            ContainerState::Exited,
            ContainerState::Paused,
        ];
        let mut last: Option<ReadStatus> = None;
        for revision in 0..300 {
            let mut containers: Vec<_> = (0..next(12))
                .map(|_| {
                    let state = states[usize::try_from(next(3)).expect("small")];
                    container(&format!("c{}", next(8)), state)
                })
                .collect();
            if next(2) == 0 {
                containers.sort_by(|a, b| a.name.cmp(&b.name));
            }
            let answer = body(revision % 4, &containers);
            let read = ReadStatus::decode(answer.clone(), last.as_ref()).expect("decodes");
            assert_eq!(read.answer(), &plain(&answer), "revision {revision}");
            last = Some(read);
        }
    }

    #[test]
    fn an_unreadable_answer_is_an_error() {
        let read = ReadStatus::decode(body(1, &[container("a", ContainerState::Running)]), None)
            .expect("decodes");
        for broken in [
            &b"{\"revision\":"[..],
            br#"{"revision":1}"#,
            br#"{"revision":2,"observed_at":"2026-12-01T10:00:00Z","snapshot_taken_at":null,"scope":null,"events_live":true,"resync_interval_seconds":30,"server_container_id":null,"containers":[{"name":1}]}"#,
        ] {
            assert!(ReadStatus::decode(Bytes::from_static(broken), Some(&read)).is_err());
        }
    }
}
