//! The training loop on tiny synthetic studies: it learns something, writes its checkpoints and
//! state, stops early, and a resumed run continues where it stopped.

use burn::prelude::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uptake::Tracer;
use uptake::volume::{Geometry, Volume};
use uptake_train::data::{Candidate, StudyCache};
use uptake_train::train::{RunDir, RunState, Strategy, TrainConfig, train};

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
    }
}

fn temp_run(name: &str) -> RunDir {
    let dir = std::env::temp_dir().join(format!("uptake-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    RunDir(dir)
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
    let resumed = train(
        &config(Strategy::III, 3),
        &train_set,
        &validation,
        &run,
        None,
        true,
        &device,
    )
    .unwrap();
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
    std::fs::remove_dir_all(&run.0).unwrap();
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
}
