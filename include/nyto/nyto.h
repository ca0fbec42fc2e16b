// nyto: arithmetic on whole neural networks (particles), swarms, and compiled update rules.
#pragma once

#include <nyto/any_module.h>
#include <nyto/errors.h>
#include <nyto/expr.h>
#include <nyto/io.h>
#include <nyto/param_config.h>
#include <nyto/particle.h>
#include <nyto/species.h>
#include <nyto/rule.h>
#include <nyto/swarm.h>
#include <nyto/version.h>
