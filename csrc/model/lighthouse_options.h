/*
 * op_options: the op's options (lighthouse::Options, the public API in
 * include/lighthouse/lighthouse.h) of a config's [lighthouse] section. The
 * one place a config becomes op options: the model, the trainer's notes and
 * any later caller (context-parallel attention, benchmarks) use it.
 */
#pragma once

#include "config/schema.h"
#include "lighthouse/lighthouse.h"

namespace lighthouse::model {

// Throws c10::Error naming an unknown scorer or backend (a validated config
// has neither).
lighthouse::Options op_options(const config::LighthouseConfig& l);

}  // namespace lighthouse::model
