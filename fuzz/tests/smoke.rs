//! Every fuzz target, for a few seconds each on stable (arbtest): what CI
//! runs. `bench/fuzz.sh` runs the same targets at length under libFuzzer.
//! `HARNESS_AUDIT_FUZZ_MS` sets each target's time (default 2,000 ms); a
//! failure prints the seed that reproduces it (`arbtest::arbtest(..).seed(..)`).

use harness_audit_fuzz::Target;

fn budget_ms() -> u64 {
    std::env::var("HARNESS_AUDIT_FUZZ_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(2_000)
}

fn fuzz(target: Target) {
    arbtest::arbtest(|u| target.run_unstructured(u))
        .budget_ms(budget_ms())
        .run();
}

#[test]
fn page() {
    fuzz(Target::Page);
}

#[test]
fn event() {
    fuzz(Target::Event);
}

#[test]
fn pass() {
    fuzz(Target::Pass);
}

#[test]
fn checkpoint() {
    fuzz(Target::Checkpoint);
}

#[test]
fn state() {
    fuzz(Target::State);
}

#[test]
fn batch() {
    fuzz(Target::Batch);
}

#[test]
fn config() {
    fuzz(Target::Config);
}

#[test]
fn tenants() {
    fuzz(Target::Tenants);
}
