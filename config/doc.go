// Package config defines tokenmq's configuration: one struct with YAML tags,
// defaults, strict decoding (unknown keys are errors) and Validate.
package config
