# Sourced by the test scripts that start something of their own (test-slurm.sh,
# test-container.sh): one way to say what they do, that they skip (exit 0, with the reason, where
# the machine cannot run it) or that they failed (exit 1). Set test_name before sourcing.
say() { echo "${test_name:?set test_name before sourcing test-report.sh}: $*"; }
skip() {
  say "SKIPPED: $*"
  exit 0
}
fail() {
  say "FAILED: $*"
  exit 1
}
