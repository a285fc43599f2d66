#pragma once
// Tenants and their routes: their entries in the table of object kinds (control/kinds.cpp).
#include "control/kinds.h"

namespace medix::dp {

extern const Kind tenant_kind, route_kind;

// A tenant's max_routes, or the default (default_max_routes) where it gives none.
inline uint32_t max_routes_of(const v1::Tenant& t) { return t.max_routes() ? t.max_routes() : default_max_routes; }

// Whether a tenant's FIB is a DIR24_8 (else compact): asked for, or a declared large table
// (max_routes above the default).
inline bool uses_dir24_8(const v1::Tenant& t) {
  return t.fib() == v1::FIB_DIR24_8 || (t.fib() == v1::FIB_KIND_UNSPECIFIED && t.max_routes() > default_max_routes);
}

}  // namespace medix::dp
