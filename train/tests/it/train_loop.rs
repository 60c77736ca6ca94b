//! The training loop on tiny synthetic studies: it learns something, writes its checkpoints and
//! state, stops early, and a resumed run continues where it stopped.

use burn::prelude::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uptake::Tracer;
use uptake::model::Architecture;
use uptake::model::format::{ModelFile, parse, read_file};
use uptake::model::init::{he_normal, untrained_v1_metadata};
use uptake::mpr::MprSpec;
use uptake::volume::{Geometry, Volume};
use uptake_train::data::{Candidate, StudyCache};
use uptake_train::network::{NetShape, UptakeNet};
use uptake_train::train::{
    RunDir, RunState, Strategy, TrainConfig, batch_tensors, load_init, load_net, predict, train,
    window_scales,
};

/// A small 3 mm study: uniform soft tissue with hot spots; suspicious spots are brighter and sit in
/// "bone" (CT 700 HU), physiological ones in soft tissue, so the task is learnable.
fn study(subject: &str, tracer: Tracer, seed: u64) -> StudyCache {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dims = [24, 24, 24];
    let g = Geometry::axis_aligned(dims, [3.0; 3], [-36.0; 3]).unwrap();
    let mut pet = vec![0.5f32; g.len()];
    let mut ct = vec![40.0f32; g.len()];
    let mut candidates = Vec::new();
    for k in 0..6 {
        let suspicious = k % 2 == 0;
        let v = [
            rng.random_range(4..20),
            rng.random_range(4..20),
            rng.random_range(4..20),
        ];
        for dz in 0..2 {
            for dy in 0..2 {
                for dx in 0..2 {
                    let i = g.index(v[0] + dx, v[1] + dy, v[2] + dz);
                    pet[i] = if suspicious { 12.0 } else { 3.0 };
                    ct[i] = if suspicious { 700.0 } else { 40.0 };
                }
            }
        }
        candidates.push(Candidate {
            centre_lps: g.voxel_to_patient([v[0] as f64, v[1] as f64, v[2] as f64]),
            suv_max: if suspicious { 12.0 } else { 3.0 },
            lesion: suspicious.then_some(1),
            location: Some(if suspicious { 21 } else { 0 }),
        });
    }
    StudyCache {
        subject: subject.into(),
        tracer,
        pet3: Volume::new(g, pet).unwrap(),
        ct3: Volume::new(g, ct).unwrap(),
        candidates,
    }
}

fn config(strategy: Strategy, epochs: usize) -> TrainConfig {
    TrainConfig {
        strategy,
        max_epochs: epochs,
        batch_size: 8,
        learning_rate: 1e-3,
        patience: 10,
        seed: 3,
        distant_weight: 1.0,
        focal_gamma: 0.0,
        region_fraction: None,
        ct_window_hu: None,
    }
}

fn temp_run(name: &str) -> RunDir {
    let dir = std::env::temp_dir().join(format!("uptake-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    RunDir(dir)
}

/// Continues the run in `run` up to `config.max_epochs`.
fn resume(
    config: &TrainConfig,
    train_set: &[StudyCache],
    validation: &[StudyCache],
    run: &RunDir,
) -> RunState {
    train(
        config,
        train_set,
        validation,
        run,
        None,
        true,
        &Device::flex(),
    )
    .unwrap()
}

#[test]
fn trains_checkpoints_and_resumes() {
    let device = Device::flex();
    let train_set = vec![study("a", Tracer::Psma, 1), study("b", Tracer::Psma, 2)];
    let validation = vec![study("c", Tracer::Psma, 3)];
    let run = temp_run("resume");
    let first = train(
        &config(Strategy::III, 1),
        &train_set,
        &validation,
        &run,
        None,
        false,
        &device,
    )
    .unwrap();
    assert_eq!(first.epochs_done, 1);
    for path in [
        run.state(),
        run.last_model(),
        run.last_optimizer(),
        run.best_model(),
    ] {
        assert!(path.exists(), "{} missing", path.display());
    }
    let resumed = resume(&config(Strategy::III, 3), &train_set, &validation, &run);
    assert_eq!(resumed.epochs_done, 3);
    assert_eq!(resumed.history.len(), 3);
    assert_eq!(resumed.history[0].train_loss, first.history[0].train_loss);
    let saved: RunState =
        serde_json::from_str(&std::fs::read_to_string(run.state()).unwrap()).unwrap();
    assert_eq!(saved.epochs_done, 3);
    // Learning happens: the training loss falls from the first epoch to the last.
    let losses: Vec<f64> = resumed.history.iter().map(|h| h.train_loss).collect();
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(losses[2] < losses[0], "{losses:?}");
    // Its regions were found at S4's fraction (`config` records none): a resume that records
    // another is refused only once the run has recorded one.
    let at = |f: f32| TrainConfig {
        region_fraction: Some(f),
        ..config(Strategy::III, 4)
    };
    let recorded = resume(&at(0.45), &train_set, &validation, &run);
    assert_eq!(recorded.config.region_fraction, None);
    let fresh = temp_run("resume-fraction");
    train(
        &at(0.45),
        &train_set,
        &validation,
        &fresh,
        None,
        false,
        &device,
    )
    .unwrap();
    let err = train(
        &at(0.6),
        &train_set,
        &validation,
        &fresh,
        None,
        true,
        &device,
    )
    .unwrap_err();
    assert!(err.to_string().contains("--region-fraction 0.45"), "{err}");
    for dir in [&run.0, &fresh.0] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn strategy_v_needs_initial_weights_sets_need_subjects_and_weights_are_positive() {
    let device = Device::flex();
    let run = temp_run("v");
    let s = vec![study("a", Tracer::Psma, 1)];
    let err = train(&config(Strategy::V, 1), &s, &s, &run, None, false, &device).unwrap_err();
    assert!(err.to_string().contains("--init"), "{err}");
    let err = train(
        &config(Strategy::III, 1),
        &s,
        &[],
        &run,
        None,
        false,
        &device,
    )
    .unwrap_err();
    assert!(err.to_string().contains("validation"), "{err}");
    for weight in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let config = TrainConfig {
            distant_weight: weight,
            ..config(Strategy::III, 1)
        };
        let err = train(&config, &s, &s, &run, None, false, &device).unwrap_err();
        assert!(err.to_string().contains("distant weight"), "{err}");
    }
    for gamma in [-0.5, f32::NAN, f32::INFINITY] {
        let config = TrainConfig {
            focal_gamma: gamma,
            ..config(Strategy::III, 1)
        };
        let err = train(&config, &s, &s, &run, None, false, &device).unwrap_err();
        assert!(err.to_string().contains("focal gamma"), "{err}");
    }
}

/// The committed model file: the weights a vendor would fine-tune on their own studies.
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/default.safetensors");

/// The model file `uptake-train export` writes from `run` (into the run's folder).
fn export(run: &RunDir, model_id: &str) -> ModelFile {
    let exported = run.0.join(format!("{model_id}.safetensors"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_uptake-train"))
        .args(["export", "--model-id", model_id, "--run"])
        .arg(&run.0)
        .arg("--out")
        .arg(&exported)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse(&read_file(&exported).unwrap()).unwrap()
}

/// Model-file tensors of a folded network, flattened in name order.
fn weights(net: &UptakeNet) -> Vec<f32> {
    let mut tensors = net.export_tensors().expect("a network without norm layers");
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
        .into_iter()
        .flat_map(|(_, _, values)| values)
        .collect()
}

#[test]
fn fine_tunes_a_model_file_without_batch_norm_and_resumes() {
    let device = Device::flex();
    let train_set = vec![study("a", Tracer::Psma, 1), study("b", Tracer::Fdg, 2)];
    let validation = vec![study("c", Tracer::Psma, 3), study("d", Tracer::Fdg, 4)];
    let file = parse(&read_file(SHIPPED.as_ref()).unwrap()).unwrap();
    let lookup = |name: &str| {
        file.tensors
            .get(name)
            .map(|t| (t.shape.clone(), t.values.clone()))
    };
    let shipped = UptakeNet::from_tensors(NetShape::v1(), &lookup, &device).unwrap();
    let run = temp_run("fine-tune");
    // A step of size zero keeps the file's weights: the run started from them, and its
    // checkpoint (a network without norm layers) loads back as such.
    let still = TrainConfig {
        learning_rate: 0.0,
        ..config(Strategy::VI, 1)
    };
    let first = train(
        &still,
        &train_set,
        &validation,
        &run,
        Some(SHIPPED.as_ref()),
        false,
        &device,
    )
    .unwrap();
    // The provenance names the file's weights by their model id, not only by the file's path.
    let from = format!("{} (models/default.safetensors)", file.metadata.model_id);
    assert_eq!(first.init.as_deref(), Some(from.as_str()));
    let best = load_net(&run.best_model(), NetShape::v1(), &device).unwrap();
    assert!(best.blocks.iter().all(|b| b.norm.is_none()));
    assert_eq!(weights(&best), weights(&shipped));
    // Exported, the run is the shipped file's weights again, its provenance naming the file.
    let written = export(&run, "fine-tuned");
    assert!(
        written
            .metadata
            .training
            .strategy
            .ends_with(&format!("; from {from}")),
        "{}",
        written.metadata.training.strategy
    );
    for (name, tensor) in &file.tensors {
        assert_eq!(written.tensors[name].values, tensor.values, "{name}");
    }
    // Its validation loss is the shipped network's on the same studies.
    let expected = predict(&shipped, &validation, &config(Strategy::VI, 1), &device)
        .unwrap()
        .loss;
    let got = first.history[0].validation_loss;
    assert!(
        (got - expected).abs() < 1e-6 * expected,
        "{got} vs {expected}"
    );
    // Resumed with a real step size, the weights move and stay without norm layers.
    let resumed = resume(&config(Strategy::VI, 2), &train_set, &validation, &run);
    assert_eq!(resumed.epochs_done, 2);
    assert_eq!(resumed.init, first.init);
    let last = load_net(&run.last_model(), NetShape::v1(), &device).unwrap();
    assert!(last.blocks.iter().all(|b| b.norm.is_none()));
    assert_ne!(weights(&last), weights(&shipped));
    // A checkpoint without norm layers starts the next run, which keeps it at step size zero.
    let next = temp_run("fine-tune-next");
    let second = train(
        &still,
        &train_set,
        &validation,
        &next,
        Some(&run.last_model()),
        false,
        &device,
    )
    .unwrap();
    let folder = run.0.file_name().unwrap().to_string_lossy();
    assert_eq!(second.init, Some(format!("{folder}/last.bpk")));
    let kept = load_net(&next.best_model(), NetShape::v1(), &device).unwrap();
    assert_eq!(weights(&kept), weights(&last));
    std::fs::remove_dir_all(&run.0).unwrap();
    std::fs::remove_dir_all(&next.0).unwrap();
}

/// A bone window for CT: conv1's CT weights of the file are rescaled, so the network reads the
/// wider window's reformations as it read its own wherever CT lies inside both.
#[test]
fn a_model_file_fine_tunes_in_a_wider_ct_window() {
    let device = Device::flex();
    let bone = TrainConfig {
        ct_window_hu: Some([-300.0, 1300.0]),
        ..config(Strategy::VI, 1)
    };
    let plain = config(Strategy::VI, 1);
    let (shipped, _) = load_init(
        SHIPPED.as_ref(),
        NetShape::v1(),
        &plain.input_spec(),
        &device,
    )
    .unwrap();
    let (wide, name) = load_init(
        SHIPPED.as_ref(),
        NetShape::v1(),
        &bone.input_spec(),
        &device,
    )
    .unwrap();
    assert!(name.contains("default.safetensors"), "{name}");
    let logits = |net: &UptakeNet, studies: &[StudyCache], config: &TrainConfig| {
        let examples: Vec<(usize, usize)> =
            (0..studies[0].candidates.len()).map(|c| (0, c)).collect();
        let (input, tracer, _) = batch_tensors(studies, &examples, None, config, &device).unwrap();
        let out = net.forward(input, tracer);
        let mut v: Vec<f32> = out.suspicious.into_data().try_to_vec().unwrap();
        v.extend(out.location.into_data().try_to_vec::<f32>().unwrap());
        v
    };
    let close = |a: &[f32], b: &[f32]| {
        let diff: f32 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
        let norm: f32 = b.iter().map(|y| y * y).sum();
        (diff / norm).sqrt()
    };
    // CT inside both windows (the bone spots at 250 HU instead of 700): the same logits.
    let mut soft = study("a", Tracer::Psma, 1);
    let ct = soft.ct3.data().iter().map(|&hu| hu.min(250.0)).collect();
    soft.ct3 = Volume::new(*soft.ct3.geometry(), ct).unwrap();
    let soft = [soft];
    let err = close(
        &logits(&wide, &soft, &bone),
        &logits(&shipped, &soft, &plain),
    );
    assert!(err < 1e-4, "relative L2 {err}");
    // At 700 HU the S5 window clips what the bone window shows: the logits differ.
    let hard = [study("a", Tracer::Psma, 1)];
    let err = close(
        &logits(&wide, &hard, &bone),
        &logits(&shipped, &hard, &plain),
    );
    assert!(err > 1e-3, "relative L2 {err}");
    // A window with another low end would shift the zero padding as well: refused.
    let shifted = MprSpec {
        ct_window_hu: [-500.0, 1300.0],
        ..MprSpec::default()
    };
    let err = load_init(SHIPPED.as_ref(), NetShape::v1(), &shifted, &device).unwrap_err();
    assert!(err.to_string().contains("starts elsewhere"), "{err}");
    // The PET planes follow the same rule.
    let pet = MprSpec {
        pet_window_suv: [0.0, 30.0],
        ..MprSpec::default()
    };
    assert_eq!(window_scales(&MprSpec::default(), &pet), Ok([2.0, 1.0]));
    let pet_shifted = MprSpec {
        pet_window_suv: [1.0, 30.0],
        ..MprSpec::default()
    };
    let err = window_scales(&MprSpec::default(), &pet_shifted).unwrap_err();
    assert!(err.contains("its PET window"), "{err}");

    // A run in the bone window records it, exports it into the model file and resumes only in it.
    let run = temp_run("ct-window");
    let s = vec![study("a", Tracer::Psma, 1), study("b", Tracer::Fdg, 2)];
    let still = TrainConfig {
        learning_rate: 0.0,
        ..bone.clone()
    };
    let state = train(&still, &s, &s, &run, Some(SHIPPED.as_ref()), false, &device).unwrap();
    assert!(
        state
            .provenance()
            .contains("; CT window [-300, 1300] HU; from "),
        "{}",
        state.provenance()
    );
    let written = export(&run, "bone");
    assert_eq!(written.metadata.input, bone.input_spec());
    let err = train(&config(Strategy::VI, 2), &s, &s, &run, None, true, &device).unwrap_err();
    assert!(err.to_string().contains("--ct-window=-300,1300"), "{err}");
    // Its checkpoint starts another run only in the same window.
    let next = temp_run("ct-window-next");
    let best = run.best_model();
    let err = train(&plain, &s, &s, &next, Some(&best), false, &device).unwrap_err();
    assert!(err.to_string().contains("--ct-window=-300,1300"), "{err}");
    train(&still, &s, &s, &next, Some(&best), false, &device).unwrap();
    // A state.json beside the checkpoint that does not read is an error, not a skipped check.
    std::fs::write(next.state(), "{").unwrap();
    let err = load_init(
        &next.best_model(),
        NetShape::v1(),
        &bone.input_spec(),
        &device,
    )
    .unwrap_err();
    assert!(err.to_string().contains("state.json"), "{err}");
    // Resumed with another loss, its best validation loss would not compare: refused.
    let focal = TrainConfig {
        focal_gamma: 2.0,
        max_epochs: 2,
        ..bone.clone()
    };
    let err = train(&focal, &s, &s, &run, None, true, &device).unwrap_err();
    assert!(err.to_string().contains("--focal-gamma 0"), "{err}");
    std::fs::remove_dir_all(&run.0).unwrap();
    std::fs::remove_dir_all(&next.0).unwrap();
}

#[test]
fn a_file_that_is_not_a_v1_model_is_refused_as_initial_weights() {
    let device = Device::flex();
    let s = vec![study("a", Tracer::Psma, 1)];
    let run = temp_run("bad-init");
    let dir = run.0.with_extension("files");
    std::fs::create_dir_all(&dir).unwrap();
    // Cut in half: the model-file reader's error, naming the file.
    let half = dir.join("half.safetensors");
    let bytes = std::fs::read(SHIPPED).unwrap();
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    // A valid model file of another network: five location classes instead of 23.
    let mut metadata = untrained_v1_metadata(1);
    metadata.classes.truncate(5);
    metadata.architecture = Architecture::v1(2 * metadata.input.planes(), 5);
    let other = dir.join("five.safetensors");
    he_normal(metadata, 1).unwrap().write(&other).unwrap();
    // The v1 shapes with another class table: training would write the v1 table over it.
    let mut metadata = untrained_v1_metadata(1);
    metadata.classes[3].name = "elsewhere".into();
    let renamed = dir.join("renamed.safetensors");
    he_normal(metadata, 1).unwrap().write(&renamed).unwrap();
    // The v1 shapes on planes of 2 mm pixels: the same tensors would see another anatomy.
    let mut metadata = untrained_v1_metadata(1);
    metadata.input.pixel_mm = 2.0;
    let finer = dir.join("finer.safetensors");
    he_normal(metadata, 1).unwrap().write(&finer).unwrap();
    for (path, needle) in [
        (&half, "incomplete"),
        (&other, "its architecture metadata is not the v1"),
        (&renamed, "its classes metadata is not the v1"),
        (&finer, "its input metadata is not the v1"),
    ] {
        let err = train(
            &config(Strategy::VI, 1),
            &s,
            &s,
            &run,
            Some(path),
            false,
            &device,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(needle), "{err}");
    }
    assert!(!run.best_model().exists());
    std::fs::remove_dir_all(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&run.0);
}

#[test]
fn provenance_names_the_settings_that_differ_from_the_defaults() {
    let state = |distant_weight, region_fraction, init: Option<&str>| RunState {
        config: TrainConfig {
            distant_weight,
            region_fraction,
            ..config(Strategy::VI, 6)
        },
        epochs_done: 5,
        best_epoch: 3,
        best_validation_loss: 0.2,
        history: Vec::new(),
        stopped_early: true,
        init: init.map(str::to_string),
    };
    let base = format!(
        "{}; best epoch 3 of 5; batch 8, Adam lr 0.001, seed 3",
        Strategy::VI.name()
    );
    assert_eq!(state(1.0, None, None).provenance(), base);
    assert_eq!(state(1.0, Some(0.45), None).provenance(), base);
    assert_eq!(
        state(3.0, Some(0.6), Some("vi14/best.bpk")).provenance(),
        format!("{base}; distant weight 3; regions at 0.6 of SUVmax; from vi14/best.bpk")
    );
    let mut focal = state(3.0, None, None);
    focal.config.focal_gamma = 2.0;
    focal.config.ct_window_hu = Some([-300.0, 1300.0]);
    assert_eq!(
        focal.provenance(),
        format!("{base}; distant weight 3; focal gamma 2; CT window [-300, 1300] HU")
    );
    // A state.json written before the region fraction was recorded still reads.
    let mut json = serde_json::to_value(state(1.0, Some(0.45), None)).unwrap();
    json["config"]
        .as_object_mut()
        .unwrap()
        .remove("region_fraction");
    let old: RunState = serde_json::from_value(json).unwrap();
    assert_eq!(old.config.region_fraction, None);
    assert_eq!(old.config.focal_gamma, 0.0);
    assert_eq!(old.config.input_spec(), MprSpec::default());
}

/// Settings that cannot train are refused before the cohort is read (caching a phantom cohort
/// takes minutes): here the cohort folder does not even exist.
#[test]
fn bad_settings_are_refused_before_any_study_is_read() {
    let out = temp_run("refused-early");
    let out_dir = out.0.display().to_string();
    let half = std::env::temp_dir().join(format!("uptake-half-{}.safetensors", std::process::id()));
    let bytes = std::fs::read(SHIPPED).unwrap();
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let half = half.display().to_string();
    // A run made with the plain loss, to resume.
    let made = temp_run("refused-early-made");
    std::fs::create_dir_all(&made.0).unwrap();
    let state = RunState {
        config: config(Strategy::VI, 3),
        epochs_done: 1,
        best_epoch: 1,
        best_validation_loss: 0.3,
        history: Vec::new(),
        stopped_early: false,
        init: None,
    };
    std::fs::write(made.state(), serde_json::to_string(&state).unwrap()).unwrap();
    let made_dir = made.0.display().to_string();
    let vi = ["--strategy", "vi", "--out", out_dir.as_str()];
    for (args, needle) in [
        (
            [&vi[..], &["--ct-window", "300,-300"]].concat(),
            "--ct-window=300,-300: ",
        ),
        ([&vi[..], &["--focal-gamma=-1"]].concat(), "focal gamma -1"),
        (
            [&vi[..], &["--distant-weight", "0"]].concat(),
            "distant weight 0",
        ),
        (
            [&vi[..], &["--init", half.as_str()]].concat(),
            half.as_str(),
        ),
        (
            vec!["--strategy", "v", "--out", out_dir.as_str()],
            "strategy V fine-tunes",
        ),
        (
            vec![
                "--strategy",
                "vi",
                "--out",
                made_dir.as_str(),
                "--resume",
                "--focal-gamma",
                "2",
            ],
            "--focal-gamma 0",
        ),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_uptake-train"))
            .args(["train", "--data", "/nonexistent/cohort"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("/nonexistent/cohort"),
            "{args:?}: {stderr}"
        );
    }
    std::fs::remove_file(&half).unwrap();
    std::fs::remove_dir_all(&made.0).unwrap();
}
