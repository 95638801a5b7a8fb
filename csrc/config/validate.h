/*
 * The rules a config must satisfy before a run starts (schema.h). The
 * Lighthouse geometry is checked by the same function the op's input checks
 * call (kernels/geometry_check.h), with the train.seq_len of the run, so a
 * config that validates does not fail on its geometry at the first step.
 *
 * Invariant: validate() accepts exactly the configs the trainer can run, so
 * a run never fails on its config after start-up.
 */
#pragma once

#include "config/schema.h"

namespace lighthouse::config {

// Throws ConfigError with every problem found, one per line, each naming
// the key and its value and saying what to change.
void validate(const Config& config);

}  // namespace lighthouse::config
