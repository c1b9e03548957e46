//! The header values of one session, rendered once from its record for every value spec of
//! the configuration (the identity headers and every `set_headers` entry of every upstream),
//! and shared by all of its requests: handing a value to a request is a reference count, not an
//! allocation or a copy. A value equal to the field it comes from (most are: ids, plain-ASCII
//! numbers and usernames) is a slice of the record's own buffer; the others share one buffer.

use bytes::Bytes;
use http::HeaderValue;

use super::template::{Outcome, ValueSpec};
use super::{Field, Identity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not sent: the spec could not be built for this user.
    Missing,
    /// The field's value in the record, as it is.
    Record(Field),
    /// A range of the rendered buffer.
    Own(u32, u32),
}

/// The rendered value of each spec, by its index in the configuration's list of specs.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    own: Bytes,
    slots: Box<[Slot]>,
}

impl Rendered {
    /// Renders every spec for `rec`.
    pub fn new(rec: &Identity, specs: &[ValueSpec]) -> Rendered {
        let mut own: Vec<u8> = Vec::new();
        let mut slots = Vec::with_capacity(specs.len());
        for spec in specs {
            let slot = match (spec.bare_field(), spec.render(rec)) {
                (_, Outcome::Missing(_) | Outcome::NoEntry) => Slot::Missing,
                (Some(f), Outcome::Value(v)) if rec.get(f) == Some(v.as_str()) => Slot::Record(f),
                (_, Outcome::Value(v)) => {
                    match (u32::try_from(own.len()), u32::try_from(own.len() + v.len())) {
                        (Ok(start), Ok(end)) => {
                            own.extend_from_slice(v.as_bytes());
                            Slot::Own(start, end)
                        }
                        // Not reachable (4 GiB of header values).
                        _ => Slot::Missing,
                    }
                }
            };
            slots.push(slot);
        }
        Rendered {
            own: Bytes::from(own),
            slots: slots.into_boxed_slice(),
        }
    }

    /// The value of spec `i` for the record it was rendered from, or `None` when it is not
    /// sent.
    pub fn value(&self, rec: &Identity, i: usize) -> Option<HeaderValue> {
        let bytes = match *self.slots.get(i)? {
            Slot::Missing => return None,
            Slot::Record(f) => rec.bytes(f)?,
            Slot::Own(start, end) => self.own.slice(start as usize..end as usize),
        };
        // Rendered values are header-safe by construction; a value that is not is not sent.
        HeaderValue::from_maybe_shared(bytes).ok()
    }

    /// Whether spec `i` has a value for this user.
    pub fn has(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(|s| *s != Slot::Missing)
    }

    /// How many specs were rendered.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::template::Template;
    use crate::identity::UserType;

    #[test]
    fn plain_values_share_the_record_and_others_one_buffer() {
        let rec = Identity::builder("5fc43758db087d0be186c29d")
            .district("5d0a9e5d0958b300014e49d2")
            .role(UserType::Teacher)
            .role(UserType::DistrictAdmin)
            .with(Field::Name, "José Ñúñez")
            .with(Field::Email, "Ana@Example.org")
            .build();
        let specs = [
            ValueSpec::field(Field::Id),
            ValueSpec::field(Field::UserType),
            ValueSpec::field(Field::Name),
            ValueSpec::List(vec![Template::parse("{email|lower}").unwrap()]),
            ValueSpec::field(Field::StudentNumber),
        ];
        let r = Rendered::new(&rec, &specs);
        assert_eq!(r.slots[0], Slot::Record(Field::Id));
        assert_eq!(r.slots[1], Slot::Record(Field::UserType));
        assert_eq!(r.value(&rec, 1).unwrap(), "teacher,district_admin");
        assert_eq!(
            r.value(&rec, 2).unwrap(),
            "UTF-8''Jos%C3%A9%20%C3%91%C3%BA%C3%B1ez"
        );
        assert_eq!(r.value(&rec, 3).unwrap(), "ana@example.org");
        assert!(r.value(&rec, 4).is_none() && !r.has(4));
        assert!(r.value(&rec, 99).is_none());
        let a = r.value(&rec, 0).unwrap();
        let b = r.value(&rec, 0).unwrap();
        assert_eq!(a, "5fc43758db087d0be186c29d");
        assert_eq!(
            a.as_bytes().as_ptr(),
            b.as_bytes().as_ptr(),
            "no copy per request"
        );
    }
}
