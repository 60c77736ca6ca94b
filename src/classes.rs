//! Anatomical location classes and their staging roles (DESIGN S6).
//!
//! The class table travels in the model file; [`v1_classes`] is the table that model v1 files
//! carry and that the phantom's ground truth uses. Code that interprets network output reads the
//! table of the loaded model, never these constants directly.

use serde::{Deserialize, Serialize};

/// What a suspicious finding at a location means for PROMISE miTNM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Local tumour (prostate, prostate bed, seminal vesicles, bladder): miT.
    T,
    /// Regional (pelvic) lymph node: miN.
    N,
    /// Extrapelvic lymph node: miM1a.
    M1a,
    /// Bone: miM1b.
    M1b,
    /// Any other organ: miM1c.
    M1c,
}

impl Role {
    /// Distant disease (M1a, M1b, M1c): staged with the distant operating point.
    pub fn is_distant(self) -> bool {
        matches!(self, Role::M1a | Role::M1b | Role::M1c)
    }
}

/// One row of the class table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationClass {
    pub id: u32,
    pub name: String,
    /// Role of a suspicious finding here.
    pub role: Role,
    /// Role used instead when the host configures the alternative reading (common iliac nodes
    /// as regional, N, rather than M1a).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternative_role: Option<Role>,
}

/// Number of location classes in model v1.
pub const V1_CLASS_COUNT: usize = 23;

/// The model v1 class table of DESIGN S6.
pub fn v1_classes() -> Vec<LocationClass> {
    use Role::*;
    let rows: [(&str, Role, Option<Role>); V1_CLASS_COUNT] = [
        ("soft_tissue", M1c, None),
        ("brain", M1c, None),
        ("lacrimal_gland", M1c, None),
        ("salivary_gland", M1c, None),
        ("pharynx", M1c, None),
        ("thyroid", M1c, None),
        ("heart", M1c, None),
        ("lung", M1c, None),
        ("liver", M1c, None),
        ("spleen", M1c, None),
        ("kidney", M1c, None),
        ("bowel", M1c, None),
        ("ureter", M1c, None),
        ("bladder", T, None),
        ("prostate", T, None),
        ("ganglion", M1c, None),
        ("ln_pelvic", N, None),
        ("ln_common_iliac", M1a, Some(N)),
        ("ln_retroperitoneal", M1a, None),
        ("ln_inguinal", M1a, None),
        ("ln_supradiaphragmatic", M1a, None),
        ("bone", M1b, None),
        ("adrenal_other_organ", M1c, None),
    ];
    rows.iter()
        .enumerate()
        .map(|(id, (name, role, alternative_role))| LocationClass {
            id: id as u32,
            name: (*name).to_string(),
            role: *role,
            alternative_role: *alternative_role,
        })
        .collect()
}

/// The id of a v1 class by name.
pub fn v1_id(name: &str) -> Option<u32> {
    v1_classes().iter().find(|c| c.name == name).map(|c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_design_s6() {
        let t = v1_classes();
        assert_eq!(t.len(), 23);
        assert_eq!(v1_id("bladder"), Some(13));
        assert_eq!(t[13].role, Role::T);
        assert_eq!(t[16].role, Role::N);
        assert_eq!(t[17].alternative_role, Some(Role::N));
        assert_eq!(t[21].role, Role::M1b);
        assert_eq!(t[22].name, "adrenal_other_organ");
        assert!(t.iter().enumerate().all(|(i, c)| c.id == i as u32));
    }
}
