//! The signed-in user's identity, user types, and the identity headers sent upstream.

use serde::{Deserialize, Serialize};

/// A Clever role. Order of the variants is the stable order used in headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserType {
    Student,
    Teacher,
    /// v3 `staff`; v2 `school_admin` is the same type.
    Staff,
    DistrictAdmin,
    Contact,
}

impl UserType {
    /// Parses a v2 or v3 role name (`school_admin` is `staff`).
    pub fn parse(s: &str) -> Option<UserType> {
        Some(match s {
            "student" => UserType::Student,
            "teacher" => UserType::Teacher,
            "staff" | "school_admin" => UserType::Staff,
            "district_admin" => UserType::DistrictAdmin,
            "contact" => UserType::Contact,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Student => "student",
            UserType::Teacher => "teacher",
            UserType::Staff => "staff",
            UserType::DistrictAdmin => "district_admin",
            UserType::Contact => "contact",
        }
    }
}
