//! The model file (DESIGN S7, docs/model-format.md): round trip, the embedded default, and
//! every kind of bad file → a typed error, never a panic or a huge allocation.

use std::collections::BTreeMap;

use half::f16;
use serde_json::{Value, json};
use uptake::Tracer;
use uptake::classes::v1_classes;
use uptake::model::format::{self, MAX_MODEL_BYTES};
use uptake::model::init::{he_normal, untrained_v1_metadata};
use uptake::model::{InputSpec, Model, ModelError, ModelWriter, OperatingPoints};

/// A model file taken apart: string metadata and (name, dtype, shape, raw bytes) per tensor.
struct RawFile {
    meta: BTreeMap<String, String>,
    tensors: Vec<(String, String, Vec<usize>, Vec<u8>)>,
}

impl RawFile {
    fn parse(bytes: &[u8]) -> Self {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: BTreeMap<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let data = &bytes[8 + n..];
        let mut meta = BTreeMap::new();
        let mut tensors = Vec::new();
        for (name, v) in header {
            if name == "__metadata__" {
                meta = serde_json::from_value(v).unwrap();
                continue;
            }
            let [s, e]: [usize; 2] = serde_json::from_value(v["data_offsets"].clone()).unwrap();
            tensors.push((
                name,
                v["dtype"].as_str().unwrap().to_string(),
                serde_json::from_value(v["shape"].clone()).unwrap(),
                data[s..e].to_vec(),
            ));
        }
        Self { meta, tensors }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), json!(self.meta));
        let mut data = Vec::new();
        for (name, dtype, shape, raw) in &self.tensors {
            header.insert(
                name.clone(),
                json!({"dtype": dtype, "shape": shape, "data_offsets": [data.len(), data.len() + raw.len()]}),
            );
            data.extend_from_slice(raw);
        }
        assemble(&serde_json::to_vec(&header).unwrap(), &data)
    }

    fn tensor_mut(&mut self, name: &str) -> &mut (String, String, Vec<usize>, Vec<u8>) {
        self.tensors.iter_mut().find(|t| t.0 == name).unwrap()
    }
}

fn assemble(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(data);
    bytes
}

fn valid() -> RawFile {
    RawFile::parse(Model::embedded_bytes())
}

fn load_err(raw: &RawFile) -> ModelError {
    Model::from_bytes(&raw.bytes()).expect_err("a bad model file must be rejected")
}

fn edit_architecture(raw: &mut RawFile, edit: impl FnOnce(&mut Value)) {
    let mut arch: Value = serde_json::from_str(&raw.meta["architecture"]).unwrap();
    edit(&mut arch);
    raw.meta.insert("architecture".into(), arch.to_string());
}

#[test]
fn embedded_model_is_a_trained_v1_model_with_its_provenance() {
    let model = Model::embedded().unwrap();
    assert!(model.is_trained());
    let training = &model.metadata().training;
    assert!(!training.untrained);
    assert!(
        training.strategy.starts_with("VI:"),
        "{}",
        training.strategy
    );
    assert!(training.data.contains("PSMA") && training.data.contains("FDG"));
    // Held-out test figures travel with the weights (docs/training-results.md): exact miN and
    // miM, and the paper's headline agreements (N0 vs N1/N2, M0 vs M1).
    for metric in [
        "heldout_average_precision",
        "heldout_accuracy_suspicious",
        "heldout_n_agreement",
        "heldout_m_agreement",
        "heldout_n0_vs_nplus_agreement",
        "heldout_m0_vs_m1_agreement",
    ] {
        let value = training.metrics.get(metric).copied();
        assert!(
            value.is_some_and(|v| (0.0..=1.0).contains(&v)),
            "{metric}: {value:?}"
        );
    }
    assert_eq!(model.classes(), v1_classes().as_slice());
    assert_eq!(model.input_spec(), &InputSpec::default());
    assert_eq!(2 * model.input_spec().planes(), 26);
    // The operating points chosen on the validation cohorts (docs/training-results.md): one
    // pair for every tracer, and FDG's own.
    assert_eq!((model.threshold(), model.distant_threshold()), (0.5, 0.8));
    let pair = |p: OperatingPoints| (p.threshold, p.distant_threshold);
    assert_eq!(pair(model.operating_points(Tracer::Psma)), (0.5, 0.8));
    assert_eq!(pair(model.operating_points(Tracer::Fdg)), (0.7, 0.5));
    let flops = model.graph().flops;
    assert!((150e6..160e6).contains(&flops), "{flops}");
    assert_eq!(model.graph().features, 2048);
}

#[test]
fn writer_round_trips_metadata_and_fp16_weights() {
    let mut metadata = untrained_v1_metadata(5);
    metadata.model_id = "round-trip".into();
    metadata
        .training
        .metrics
        .insert("average_precision".into(), 0.875);
    metadata.threshold = 0.37;
    metadata.distant_threshold = Some(0.81);
    let fdg = OperatingPoints {
        threshold: 0.42,
        distant_threshold: 0.66,
    };
    metadata.operating_points.insert(Tracer::Fdg, fdg);
    let writer = he_normal(metadata.clone(), 5).unwrap();
    let path = std::env::temp_dir().join(format!(
        "uptake-model-rt-{}.safetensors",
        std::process::id()
    ));
    writer.write(&path).unwrap();
    let model = Model::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(model.metadata(), &metadata);
    assert_eq!((model.threshold(), model.distant_threshold()), (0.37, 0.81));
    // A tracer with its own operating points uses them, the other the general ones.
    assert_eq!(model.operating_points(Tracer::Fdg), fdg);
    assert_eq!(
        model.operating_points(Tracer::Psma),
        OperatingPoints {
            threshold: 0.37,
            distant_threshold: 0.81
        }
    );
    // Without a separate distant operating point the single one holds for all findings.
    metadata.operating_points.clear();
    metadata.distant_threshold = None;
    let single = Model::from_bytes(&he_normal(metadata, 5).unwrap().to_bytes().unwrap()).unwrap();
    assert_eq!(single.metadata().distant_threshold, None);
    assert_eq!(single.distant_threshold(), 0.37);
    assert_eq!(single.operating_points(Tracer::Fdg).distant_threshold, 0.37);
    let parsed = format::parse(&writer.to_bytes().unwrap()).unwrap();
    for (name, t) in writer.tensors() {
        let got = &parsed.tensors[name];
        assert_eq!(got.shape, t.shape);
        let rounded: Vec<f32> = t
            .values
            .iter()
            .map(|&v| f16::from_f32(v).to_f32())
            .collect();
        assert_eq!(got.values, rounded, "{name}");
    }
    let Some(uptake::model::graph::Op::Conv(conv1)) = model.graph().trunk.first() else {
        panic!("first op is conv1")
    };
    assert_eq!(conv1.weight, parsed.tensors["conv1.weight"].values);
}

#[test]
fn other_model_versions_are_refused() {
    for version in ["2", "0", "1.0", "", "one"] {
        let mut raw = valid();
        raw.meta
            .insert("uptake.model_version".into(), version.into());
        assert!(
            matches!(load_err(&raw), ModelError::UnsupportedVersion { .. }),
            "version {version:?}"
        );
    }
    let mut raw = valid();
    raw.meta.remove("uptake.model_version");
    assert!(matches!(
        load_err(&raw),
        ModelError::MissingMetadata("uptake.model_version")
    ));
}

#[test]
fn missing_or_malformed_metadata_is_named() {
    for key in [
        "architecture",
        "classes",
        "input",
        "training",
        "threshold",
        "model_id",
    ] {
        let mut raw = valid();
        raw.meta.remove(key);
        match load_err(&raw) {
            ModelError::MissingMetadata(k) => assert_eq!(k, key),
            other => panic!("{key}: {other}"),
        }
    }
    let cases: [(&str, &str); 16] = [
        ("classes", r#"[{"id": 1, "name": "x", "role": "T"}]"#),
        ("classes", r#"[{"id": 0, "name": "x", "role": "Q"}]"#),
        ("input", r#"{"plane_offsets_mm": [0], "plane_size": 64}"#),
        ("threshold", "1.5"),
        ("threshold", "NaN"),
        ("distant_threshold", "0"),
        ("distant_threshold", "NaN"),
        ("distant_threshold", "high"),
        ("training", "[]"),
        ("operating_points", "fdg"),
        (
            "operating_points",
            r#"{"fluciclovine": {"threshold": 0.5, "distant_threshold": 0.5}}"#,
        ),
        ("operating_points", r#"{"fdg": {"threshold": 0.5}}"#),
        (
            "operating_points",
            r#"{"fdg": {"threshold": 0.5, "distant_threshold": 1.0}}"#,
        ),
        (
            "operating_points",
            r#"{"psma": {"threshold": 0, "distant_threshold": 0.5}}"#,
        ),
        (
            "operating_points",
            r#"{"fdg": {"threshold": 0.5, "distant_threshold": 0.5, "regional": 0.4}}"#,
        ),
        (
            "operating_points",
            r#"{"fdg": {"threshold": 0.5, "distant_threshold": 0.5},
                "fdg": {"threshold": 0.6, "distant_threshold": 0.6}}"#,
        ),
    ];
    for (key, value) in cases {
        let mut raw = valid();
        raw.meta.insert(key.into(), value.into());
        match load_err(&raw) {
            ModelError::BadMetadata { key: k, .. } => assert_eq!(k, key, "{value}"),
            other => panic!("{key} = {value}: {other}"),
        }
    }
    // A tracer's value out of range is named with its tracer.
    let mut raw = valid();
    let bad = r#"{"fdg": {"threshold": 0.5, "distant_threshold": 1.0}}"#;
    raw.meta.insert("operating_points".into(), bad.into());
    let message = load_err(&raw).to_string();
    assert!(message.contains("fdg.distant_threshold: 1"), "{message}");
    // A tracer given twice is refused, not read as its last pair.
    let twice = r#"{"fdg": {"threshold": 0.5, "distant_threshold": 0.5},
                    "fdg": {"threshold": 0.6, "distant_threshold": 0.6}}"#;
    raw.meta.insert("operating_points".into(), twice.into());
    let message = load_err(&raw).to_string();
    assert!(message.contains("fdg is given more than once"), "{message}");
}

#[test]
fn unknown_layer_type_is_named() {
    let mut raw = valid();
    edit_architecture(&mut raw, |a| {
        a["heads"][1]["layers"][1]["type"] = json!("gelu")
    });
    match load_err(&raw) {
        ModelError::UnknownLayer {
            section,
            index,
            kind,
        } => {
            assert_eq!(
                (section.as_str(), index, kind.as_str()),
                ("head \"location\"", 1, "gelu")
            )
        }
        other => panic!("{other}"),
    }
    let mut raw = valid();
    edit_architecture(&mut raw, |a| a["trunk"][0]["dilation"] = json!(2));
    assert!(matches!(
        load_err(&raw),
        ModelError::BadMetadata {
            key: "architecture",
            ..
        }
    ));
}

#[test]
fn inconsistent_architectures_are_refused() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "\"conv2\" takes 33 channels but receives 32",
            Box::new(|a| a["trunk"][3]["in_channels"] = json!(33)),
        ),
        (
            "linear \"location.fc1\" takes",
            Box::new(|a| a["heads"][1]["layers"][0]["in_features"] = json!(2049)),
        ),
        (
            "does not divide",
            Box::new(|a| a["trunk"][2]["size"] = json!(3)),
        ),
        (
            "unknown head",
            Box::new(|a| a["heads"][0]["name"] = json!("malignancy")),
        ),
        (
            "both required",
            Box::new(|a| {
                a["heads"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "flat feature vector",
            Box::new(|a| {
                a["trunk"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "cannot be applied",
            Box::new(|a| {
                a["heads"][0]["layers"]
                    .as_array_mut()
                    .unwrap()
                    .insert(0, json!({"type": "max_pool2d", "size": 2}))
            }),
        ),
    ];
    for (expected, edit) in edits {
        let mut raw = valid();
        edit_architecture(&mut raw, edit);
        match load_err(&raw) {
            ModelError::Architecture(msg) => assert!(msg.contains(expected), "{expected}: {msg}"),
            other => panic!("{expected}: {other}"),
        }
    }
    // The location head must give one logit per class of the class table.
    let mut raw = valid();
    let mut classes = v1_classes();
    classes.pop();
    raw.meta
        .insert("classes".into(), serde_json::to_string(&classes).unwrap());
    assert!(
        matches!(load_err(&raw), ModelError::Architecture(m) if m.contains("expected 22 outputs"))
    );
    // The input spec must agree with the first convolution: 12 planes give 24 channels.
    let mut raw = valid();
    let mut spec = InputSpec::default();
    spec.plane_offsets_mm.pop();
    raw.meta
        .insert("input".into(), serde_json::to_string(&spec).unwrap());
    assert!(matches!(load_err(&raw), ModelError::Architecture(m) if m.contains("receives 24")));
}

#[test]
fn tensor_problems_are_named() {
    let mut raw = valid();
    raw.tensors.retain(|t| t.0 != "conv3.bias");
    assert!(matches!(load_err(&raw), ModelError::MissingTensor(n) if n == "conv3.bias"));

    let mut raw = valid();
    raw.tensors
        .push(("conv5.weight".into(), "F16".into(), vec![2], vec![0; 4]));
    assert!(matches!(load_err(&raw), ModelError::UnexpectedTensor(n) if n == "conv5.weight"));

    let mut raw = valid();
    raw.tensor_mut("conv2.weight").2 = vec![64, 288];
    assert!(
        matches!(load_err(&raw), ModelError::TensorShape { name, .. } if name == "conv2.weight")
    );

    let mut raw = valid();
    let t = raw.tensor_mut("location.fc2.bias");
    let widened: Vec<u8> =
        t.3.chunks_exact(2)
            .flat_map(|h| f16::from_le_bytes([h[0], h[1]]).to_f32().to_le_bytes())
            .collect();
    t.1 = "F32".into();
    t.3 = widened;
    assert!(
        matches!(load_err(&raw), ModelError::TensorDtype { name, found } if name == "location.fc2.bias" && found == "F32")
    );

    for bad in [f16::NAN, f16::INFINITY, f16::NEG_INFINITY] {
        let mut raw = valid();
        raw.tensor_mut("conv1.weight").3[20..22].copy_from_slice(&bad.to_le_bytes());
        assert!(matches!(
            load_err(&raw),
            ModelError::NonFiniteWeight { name, index: 10 } if name == "conv1.weight"
        ));
    }
}

#[test]
fn writer_refuses_what_the_loader_would() {
    let mut writer = he_normal(untrained_v1_metadata(1), 1).unwrap();
    writer.tensor("conv1.bias", vec![32], vec![1e6; 32]); // beyond fp16: would be infinite
    assert!(matches!(
        writer.to_bytes(),
        Err(ModelError::NonFiniteWeight { .. })
    ));
    let mut writer = he_normal(untrained_v1_metadata(1), 1).unwrap();
    writer.tensor("conv1.bias", vec![31], vec![0.0; 31]);
    assert!(matches!(
        writer.to_bytes(),
        Err(ModelError::TensorShape { .. })
    ));
    writer.tensor("conv1.bias", vec![32], vec![0.0; 31]);
    assert!(matches!(
        writer.to_bytes(),
        Err(ModelError::TensorShape { .. })
    ));
    let mut empty = ModelWriter::new(untrained_v1_metadata(1));
    assert!(matches!(
        empty.to_bytes(),
        Err(ModelError::MissingTensor(_))
    ));
    empty.metadata_mut().threshold = 0.0;
    assert!(matches!(
        empty.to_bytes(),
        Err(ModelError::BadMetadata {
            key: "threshold",
            ..
        })
    ));
}

#[test]
fn truncated_files_are_refused_at_every_length() {
    let bytes = Model::embedded_bytes();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let cuts = (0..header_end + 16)
        .chain((header_end..bytes.len()).step_by(997))
        .chain([bytes.len() - 1]);
    for len in cuts {
        assert!(
            matches!(
                Model::from_bytes(&bytes[..len]),
                Err(ModelError::Container(_))
            ),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn hostile_headers_are_refused_without_allocating() {
    let data = vec![0u8; 64];
    let header = |h: Value| serde_json::to_vec(&h).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("header length beyond the file", {
            let mut b = assemble(&header(json!({})), &data);
            b[..8].copy_from_slice(&1000u64.to_le_bytes());
            b
        }),
        ("header length u64::MAX", {
            let mut b = assemble(&header(json!({})), &data);
            b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        }),
        (
            "huge shape",
            assemble(
                &header(
                    json!({"a": {"dtype": "F16", "shape": [1u64 << 62, 1u64 << 62], "data_offsets": [0, 64]}}),
                ),
                &data,
            ),
        ),
        (
            "shape times dtype beyond the data",
            assemble(
                &header(
                    json!({"a": {"dtype": "F16", "shape": [1u64 << 40], "data_offsets": [0, 1u64 << 41]}}),
                ),
                &data,
            ),
        ),
        (
            "overlapping offsets",
            assemble(
                &header(json!({
                    "a": {"dtype": "F16", "shape": [32], "data_offsets": [0, 64]},
                    "b": {"dtype": "F16", "shape": [16], "data_offsets": [32, 64]}
                })),
                &data,
            ),
        ),
        (
            "offsets past the end",
            assemble(
                &header(json!({"a": {"dtype": "F16", "shape": [64], "data_offsets": [0, 128]}})),
                &data,
            ),
        ),
        ("not JSON", assemble(b"\xff\xfe{{", &data)),
        ("JSON array", assemble(b"[1, 2, 3]", &data)),
        (
            "metadata not strings",
            assemble(&header(json!({"__metadata__": {"threshold": 0.5}})), &[]),
        ),
    ];
    for (what, bytes) in cases {
        match Model::from_bytes(&bytes) {
            Err(ModelError::Container(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    // A valid container without our metadata is a model error, not a container error.
    assert!(matches!(
        Model::from_bytes(&assemble(&header(json!({})), &[])),
        Err(ModelError::MissingMetadata("uptake.model_version"))
    ));
}

#[test]
fn oversized_files_are_refused_before_reading() {
    let path = std::env::temp_dir().join(format!(
        "uptake-model-big-{}.safetensors",
        std::process::id()
    ));
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(MAX_MODEL_BYTES + 1).unwrap(); // sparse: no disk, and we must not read it
    let err = Model::load(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(err, ModelError::TooLarge { .. }), "{err}");
    assert!(matches!(
        Model::load("/nonexistent/model.safetensors"),
        Err(ModelError::Io { .. })
    ));
}

#[test]
fn corrupted_bytes_never_panic() {
    let bytes = Model::embedded_bytes();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..300 {
        let mut b = bytes.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % header_end;
            b[at] = next() as u8;
        }
        // Any outcome but a panic is acceptable; a surviving model must still be consistent.
        if let Ok(model) = Model::from_bytes(&b) {
            assert_eq!(model.graph().input_len(), model.input_spec().tensor_len());
        }
    }
}
