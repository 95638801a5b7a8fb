/*
 * The trainer's configuration, all of it: the schema (structs, field table,
 * derived values), reading and writing (TOML, overrides, presets, --help)
 * and validation. Torch-free; see the three headers for the invariants.
 */
#pragma once

#include "config/schema.h"
#include "config/toml_io.h"
#include "config/validate.h"
