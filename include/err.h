/* err.h - the project's one error vocabulary, shared by every layer. */
#ifndef ERR_H
#define ERR_H

/*
 * Functions that can fail return 0 (or a non-negative result) on success and
 * one of these negative codes on failure. A failed call changes nothing.
 */
enum err {
	E_OK      = 0,
	E_INVAL   = -1,  /* malformed argument: zero size, bad flags, NULL */
	E_NOMEM   = -2,  /* no memory satisfies the request */
	E_RANGE   = -3,  /* value or address out of range, arithmetic overflow */
	E_ALIGN   = -4,  /* misaligned address, size or alignment not a power of two */
	E_EXIST   = -5,  /* overlaps something that exists (region, mapping, free block) */
	E_NOENT   = -6,  /* not found: no such block, mapping, node, extension */
	E_BUSY    = -7,  /* contended or in use; try again */
	E_NOTSUP  = -8,  /* not supported by this hardware, firmware or build */
	E_FAULT   = -9,  /* pointer outside what the caller owns */
	E_CORRUPT = -10, /* malformed input data or a broken invariant */
	E_DENIED  = -11, /* not allowed for this caller */
	E_FAILED  = -12, /* generic failure reported by firmware */
	E_TIMEOUT = -13, /* did not happen in time */
};

static inline const char *err_str(int e)
{
	switch (e) {
	case E_OK:      return "ok";
	case E_INVAL:   return "invalid argument";
	case E_NOMEM:   return "out of memory";
	case E_RANGE:   return "out of range";
	case E_ALIGN:   return "bad alignment";
	case E_EXIST:   return "overlaps existing";
	case E_NOENT:   return "not found";
	case E_BUSY:    return "busy";
	case E_NOTSUP:  return "not supported";
	case E_FAULT:   return "bad address";
	case E_CORRUPT: return "corrupt";
	case E_DENIED:  return "denied";
	case E_FAILED:  return "failed";
	case E_TIMEOUT: return "timeout";
	default:        return "unknown error";
	}
}

#endif
