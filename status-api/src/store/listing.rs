//! The containers of the live view, each decorated once — `in_snapshot`, `spec_changes` and `tag_image_id`,
//! for the baseline and the image tags in force — and kept in name order. A [`crate::view::View`] of any
//! revision is then a list of shared pointers into it, not a copy, a sort and a spec comparison of every
//! status: at 20,000 containers that copy cost a few milliseconds per revision, enough for the view to fall
//! behind a few hundred events a second (docs/benchmarks.md, "Where the time and the memory go"). A change
//! to one container costs one decoration; a new baseline or new image tags decorate every container again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use shared::ContainerStatus;

use crate::baseline::Baseline;

/// Which image each image reference names now: its id, or `None` when it names none.
pub type ImageTags = HashMap<String, Option<String>>;

/// What a status is decorated with: the baseline it is compared with and the image tags of the host.
#[derive(Debug, Clone, Copy)]
pub struct Decor<'a> {
    pub baseline: Option<&'a Baseline>,
    pub image_tags: &'a ImageTags,
}

impl Decor<'_> {
    /// `status` with the fields the store fills in set for this baseline and these tags; whatever they held
    /// before (a status read back from the store, say) is replaced.
    fn apply(&self, status: ContainerStatus) -> ContainerStatus {
        let Decoration {
            in_snapshot,
            spec_changes,
            tag_image_id,
        } = self.of(&status);
        ContainerStatus {
            in_snapshot,
            spec_changes,
            tag_image_id,
            ..status
        }
    }

    /// What `status` is decorated with, worked out without copying it.
    fn of(&self, status: &ContainerStatus) -> Decoration {
        Decoration {
            in_snapshot: self
                .baseline
                .is_some_and(|baseline| baseline.contains(&status.name)),
            spec_changes: self
                .baseline
                .map(|baseline| baseline.spec_changes(status))
                .unwrap_or_default(),
            tag_image_id: self.image_tags.get(&status.image).cloned().flatten(),
        }
    }
}

/// The fields of a status the store fills in.
#[derive(Debug, PartialEq, Eq)]
struct Decoration {
    in_snapshot: bool,
    spec_changes: Vec<shared::SpecChange>,
    tag_image_id: Option<String>,
}

impl Decoration {
    /// Whether `status` carries this decoration already.
    fn is_on(&self, status: &ContainerStatus) -> bool {
        status.in_snapshot == self.in_snapshot
            && status.spec_changes == self.spec_changes
            && status.tag_image_id == self.tag_image_id
    }
}

/// Every container in scope, decorated, by id and in name order (the same shared statuses in both).
#[derive(Debug, Default)]
pub struct Listing {
    by_id: HashMap<String, Arc<ContainerStatus>>,
    /// By name, then id: names are unique on an engine, but for a moment two containers may show one (a
    /// replacement created before the old one's `destroy` is applied).
    by_name: BTreeMap<(String, String), Arc<ContainerStatus>>,
    /// How many containers were created from each image reference (image ids left out): asked at every
    /// revision by the image tag watch, so counted as containers come and go rather than gathered from
    /// every container then (a sort of 20,000 references per revision was most of status-api's CPU at
    /// 20,000 containers).
    images: BTreeMap<String, usize>,
}

impl Listing {
    pub fn get(&self, id: &str) -> Option<&Arc<ContainerStatus>> {
        self.by_id.get(id)
    }

    /// Sets container `id`'s status, decorated with `decor`; whether that changed anything.
    pub fn set(&mut self, id: String, status: ContainerStatus, decor: Decor<'_>) -> bool {
        let status = decor.apply(status);
        if self.by_id.get(&id).is_some_and(|known| **known == status) {
            return false;
        }
        self.put(id, Arc::new(status));
        true
    }

    /// Forgets container `id`; whether it was there.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(gone) = self.by_id.remove(id) else {
            return false;
        };
        self.by_name.remove(&(gone.name.clone(), id.to_owned()));
        self.forget_image(&gone.image);
        true
    }

    /// Replaces every container with `containers` (a re-list), decorated with `decor`; whether that changed
    /// anything. A container that is as it was keeps its shared status.
    pub fn replace_all(
        &mut self,
        containers: HashMap<String, ContainerStatus>,
        decor: Decor<'_>,
    ) -> bool {
        let mut changed = containers.len() != self.by_id.len();
        let mut next = Self::default();
        for (id, status) in containers {
            let status = decor.apply(status);
            let status = match self.by_id.get(&id) {
                Some(known) if **known == status => known.clone(),
                _ => {
                    changed = true;
                    Arc::new(status)
                }
            };
            next.put(id, status);
        }
        *self = next;
        changed
    }

    /// Decorates every container again, for a new baseline or new image tags. Only a status whose
    /// decoration differs is copied (at 20,000 containers, a copy of each to compare was a tenth of a first
    /// start's work).
    pub fn redecorate(&mut self, decor: Decor<'_>) {
        let stale: Vec<(String, ContainerStatus)> = self
            .by_id
            .iter()
            .filter_map(|(id, known)| {
                let decoration = decor.of(known);
                (!decoration.is_on(known)).then(|| {
                    let Decoration {
                        in_snapshot,
                        spec_changes,
                        tag_image_id,
                    } = decoration;
                    let fresh = ContainerStatus {
                        in_snapshot,
                        spec_changes,
                        tag_image_id,
                        ..ContainerStatus::clone(known)
                    };
                    (id.clone(), fresh)
                })
            })
            .collect();
        for (id, fresh) in stale {
            self.put(id, Arc::new(fresh));
        }
    }

    /// Every container, sorted by name (then id): shared pointers, not copies.
    pub fn sorted(&self) -> Vec<Arc<ContainerStatus>> {
        self.by_name.values().cloned().collect()
    }

    /// The distinct image references the containers were created from, image ids left out (they name one
    /// image for good).
    pub fn image_references(&self) -> BTreeSet<String> {
        self.images.keys().cloned().collect()
    }

    fn put(&mut self, id: String, status: Arc<ContainerStatus>) {
        let key = (status.name.clone(), id.clone());
        let image = status.image.clone();
        if let Some(replaced) = self.by_id.insert(id, status.clone()) {
            if replaced.name != key.0 {
                self.by_name.remove(&(replaced.name.clone(), key.1.clone()));
            }
            self.forget_image(&replaced.image);
        }
        self.by_name.insert(key, status);
        if !image.is_empty() && !shared::image_ref::is_image_id(&image) {
            *self.images.entry(image).or_default() += 1;
        }
    }

    fn forget_image(&mut self, image: &str) {
        if let Some(count) = self.images.get_mut(image) {
            *count -= 1;
            if *count == 0 {
                self.images.remove(image);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, name: &str, image: &str) -> ContainerStatus {
        ContainerStatus {
            id: id.to_owned(),
            name: name.to_owned(),
            image: image.to_owned(),
            ..<ContainerStatus as poem_openapi::types::Example>::example()
        }
    }

    fn names(listing: &Listing) -> Vec<String> {
        listing
            .sorted()
            .iter()
            .map(|container| format!("{}/{}", container.name, container.id))
            .collect()
    }

    #[test]
    fn containers_stay_in_name_order_through_sets_renames_and_removals() {
        let tags = ImageTags::new();
        let decor = Decor {
            baseline: None,
            image_tags: &tags,
        };
        let mut listing = Listing::default();
        assert!(listing.set("2".into(), status("2", "web", "nginx"), decor));
        assert!(listing.set("1".into(), status("1", "db", "postgres"), decor));
        assert!(listing.set("3".into(), status("3", "api", "app"), decor));
        assert_eq!(names(&listing), ["api/3", "db/1", "web/2"]);
        // The same status again is no change.
        assert!(!listing.set("2".into(), status("2", "web", "nginx"), decor));
        // Renamed: it moves, and its old place is gone.
        assert!(listing.set("2".into(), status("2", "a-web", "nginx"), decor));
        assert_eq!(names(&listing), ["a-web/2", "api/3", "db/1"]);
        // Two containers may show one name for a moment: both are listed, by id.
        assert!(listing.set("0".into(), status("0", "db", "postgres"), decor));
        assert_eq!(names(&listing), ["a-web/2", "api/3", "db/0", "db/1"]);
        assert!(listing.remove("1"));
        assert!(!listing.remove("1"));
        assert_eq!(names(&listing), ["a-web/2", "api/3", "db/0"]);
        let references = |listing: &Listing| {
            listing
                .image_references()
                .into_iter()
                .collect::<Vec<String>>()
        };
        assert_eq!(references(&listing), ["app", "nginx", "postgres"]);
        // A reference is kept while any container was created from it; image ids are never references.
        assert!(listing.set("3".into(), status("3", "api", "nginx"), decor));
        assert_eq!(references(&listing), ["nginx", "postgres"]);
        assert!(listing.remove("0"));
        assert_eq!(references(&listing), ["nginx"]);
        let id = "sha256:".to_owned() + &"a".repeat(64);
        assert!(listing.set("2".into(), status("2", "a-web", &id), decor));
        assert_eq!(references(&listing), ["nginx"]);
        assert!(listing.remove("3"));
        assert!(references(&listing).is_empty());
    }

    #[test]
    fn a_re_list_keeps_the_shared_status_of_what_did_not_change_and_tags_decorate_every_container()
    {
        let mut tags = ImageTags::new();
        let mut listing = Listing::default();
        let decor = Decor {
            baseline: None,
            image_tags: &tags,
        };
        listing.set("1".into(), status("1", "web", "nginx"), decor);
        listing.set("2".into(), status("2", "db", "postgres"), decor);
        let web = listing.get("1").expect("web").clone();

        let same = HashMap::from([
            ("1".to_owned(), status("1", "web", "nginx")),
            ("2".to_owned(), status("2", "db", "postgres")),
        ]);
        assert!(!listing.replace_all(same.clone(), decor));
        assert!(Arc::ptr_eq(&web, listing.get("1").expect("web")));

        let mut moved = same.clone();
        moved.remove("2");
        assert!(listing.replace_all(moved, decor));
        assert_eq!(names(&listing), ["web/1"]);
        assert_eq!(
            listing.image_references(),
            BTreeSet::from(["nginx".to_owned()])
        );
        assert!(listing.replace_all(same, decor));
        assert_eq!(names(&listing), ["db/2", "web/1"]);

        let db = listing.get("2").expect("db").clone();
        tags.insert("nginx".to_owned(), Some("sha256:new".to_owned()));
        listing.redecorate(Decor {
            baseline: None,
            image_tags: &tags,
        });
        let web = listing.get("1").expect("web");
        assert_eq!(web.tag_image_id.as_deref(), Some("sha256:new"));
        assert_eq!(listing.get("2").expect("db").tag_image_id, None);
        // Its decoration did not change: the same shared status, not a copy.
        assert!(Arc::ptr_eq(&db, listing.get("2").expect("db")));
        assert_eq!(
            listing.sorted()[1].tag_image_id.as_deref(),
            Some("sha256:new")
        );
    }
}
