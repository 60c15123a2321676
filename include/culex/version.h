/* culex/version.h — the culex release this header set belongs to. */
#ifndef CULEX_VERSION_H
#define CULEX_VERSION_H

#define CULEX_VERSION_MAJOR 0
#define CULEX_VERSION_MINOR 1
#define CULEX_VERSION_PATCH 0
#define CULEX_VERSION_STRING "0.1.0"

#endif
