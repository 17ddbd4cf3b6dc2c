/* treap.h - the address-ordered treap with subtree maxima that lmm (free
 * blocks of a region) and kmalloc's pool (free extents) keep, nodes stored
 * inside the free memory they describe. One implementation, instantiated
 * per node type by TREAP_DEFINE so each manager keeps its own node layout
 * (lmm: byte sizes; kmalloc: 16-byte granules in a block header) and its
 * own priority, and the compiler sees plain field accesses (no callbacks).
 *
 * Why a treap: a node must fit the smallest free block, leaving no room
 * for a balance field. With a heap priority that is a hash of the node's
 * address (distinct for distinct nodes), the shape is determined by the
 * set of addresses alone, stays O(log n) deep in expectation, and needs
 * no rebalancing beyond split and merge. `max` (the largest size in the
 * subtree) lets a first-fit descent skip subtrees without a fit.
 *
 * TREAP_DEFINE(name, T, L, R, SZ, SIZE, SET_SIZE, MAX, PRIO) generates
 * static functions name_*() for nodes of type T with child fields L and R,
 * the size type SZ, SIZE(n) reading n's size, SET_SIZE(n, v) writing it,
 * the field MAX for the subtree maximum and PRIO(n) the heap priority (a
 * higher one is nearer the root). The key is the node's address. None of
 * them takes a lock or allocates: the caller serialises calls on a tree.
 *
 *   name_fix(n)                   recompute n's MAX from n and its children
 *   name_merge(a, b)              join: every node of a is below every of b
 *   name_split(t, key, lo, hi)    nodes below key to *lo, the others to *hi
 *   name_insert(root, n)          add n (L, R, size set by the caller: n's
 *                                 MAX is set here); n must not be in it
 *   name_erase(root, n)           remove n; false (nothing changed) if n is
 *                                 not in the tree
 *   name_resize(root, n, v)       set n's size in place (its key stays);
 *                                 false (nothing changed) if n is not in it
 *   name_neighbours(t, a, p, s)   *p: last node below a, *s: first at or
 *                                 above a (NULL when none)
 *   name_first_fit(t, need)       lowest-address node of size >= need, or
 *                                 NULL
 */
#ifndef MM_TREAP_H
#define MM_TREAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deeper trees (astronomically unlikely) take the recursive resize. */
#define TREAP_PATH_MAX 64

#define TREAP_DEFINE(name, T, L, R, SZ, SIZE, SET_SIZE, MAX, PRIO)            \
static inline SZ name##_max_of(const T *n)                                    \
{                                                                             \
	return n ? n->MAX : 0;                                                \
}                                                                             \
                                                                              \
static inline void name##_fix(T *n)                                           \
{                                                                             \
	SZ a = SIZE(n), b = name##_max_of(n->L), c = name##_max_of(n->R);     \
	SZ m = a > b ? a : b;                                                 \
	n->MAX = m > c ? m : c;                                               \
}                                                                             \
                                                                              \
static __attribute__((unused)) T *name##_merge(T *a, T *b)                    \
{                                                                             \
	if (!a)                                                               \
		return b;                                                     \
	if (!b)                                                               \
		return a;                                                     \
	if (PRIO(a) > PRIO(b)) {                                              \
		a->R = name##_merge(a->R, b);                                 \
		name##_fix(a);                                                \
		return a;                                                     \
	}                                                                     \
	b->L = name##_merge(a, b->L);                                         \
	name##_fix(b);                                                        \
	return b;                                                             \
}                                                                             \
                                                                              \
static __attribute__((unused)) void name##_split(T *t, uintptr_t key, T **lo, T **hi) \
{                                                                             \
	if (!t) {                                                             \
		*lo = *hi = NULL;                                             \
		return;                                                       \
	}                                                                     \
	if ((uintptr_t)t < key) {                                             \
		name##_split(t->R, key, &t->R, hi);                           \
		*lo = t;                                                      \
	} else {                                                              \
		name##_split(t->L, key, lo, &t->L);                           \
		*hi = t;                                                      \
	}                                                                     \
	name##_fix(t);                                                        \
}                                                                             \
                                                                              \
static __attribute__((unused)) T *name##_insert_at(T *t, T *n)                \
{                                                                             \
	if (!t)                                                               \
		return n;                                                     \
	if (PRIO(n) > PRIO(t)) {                                              \
		name##_split(t, (uintptr_t)n, &n->L, &n->R);                  \
		name##_fix(n);                                                \
		return n;                                                     \
	}                                                                     \
	if ((uintptr_t)n < (uintptr_t)t)                                      \
		t->L = name##_insert_at(t->L, n);                             \
	else                                                                  \
		t->R = name##_insert_at(t->R, n);                             \
	name##_fix(t);                                                        \
	return t;                                                             \
}                                                                             \
                                                                              \
static __attribute__((unused)) void name##_insert(T **root, T *n)             \
{                                                                             \
	n->L = n->R = NULL;                                                   \
	n->MAX = SIZE(n);                                                     \
	*root = name##_insert_at(*root, n);                                   \
}                                                                             \
                                                                              \
static __attribute__((unused)) T *name##_erase_at(T *t, T *n, bool *found) \
{                                                                             \
	if (!t)                                                               \
		return NULL;                                                  \
	if (t == n) {                                                         \
		*found = true;                                                \
		return name##_merge(t->L, t->R);                              \
	}                                                                     \
	if ((uintptr_t)n < (uintptr_t)t)                                      \
		t->L = name##_erase_at(t->L, n, found);                       \
	else                                                                  \
		t->R = name##_erase_at(t->R, n, found);                       \
	name##_fix(t);                                                        \
	return t;                                                             \
}                                                                             \
                                                                              \
static __attribute__((unused)) bool name##_erase(T **root, T *n)              \
{                                                                             \
	bool found = false;                                                   \
                                                                              \
	*root = name##_erase_at(*root, n, &found);                            \
	return found;                                                         \
}                                                                             \
                                                                              \
static __attribute__((unused)) bool name##_resize_rec(T *t, T *n, SZ v)       \
{                                                                             \
	bool found;                                                           \
                                                                              \
	if (!t)                                                               \
		return false;                                                 \
	if (t == n) {                                                         \
		SET_SIZE(n, v);                                               \
		found = true;                                                 \
	} else {                                                              \
		found = name##_resize_rec((uintptr_t)n < (uintptr_t)t ? t->L : t->R, n, v); \
	}                                                                     \
	name##_fix(t);                                                        \
	return found;                                                         \
}                                                                             \
                                                                              \
/* Subtree maxima are fixed bottom-up and only as far as they change. */      \
static __attribute__((unused)) bool name##_resize(T **root, T *n, SZ v)       \
{                                                                             \
	T *path[TREAP_PATH_MAX], *t = *root;                                  \
	int d = 0;                                                            \
	SZ old;                                                               \
                                                                              \
	for (; t != n; t = (uintptr_t)n < (uintptr_t)t ? t->L : t->R) {       \
		if (!t)                                                       \
			return false;                                         \
		if (d == TREAP_PATH_MAX)                                      \
			return name##_resize_rec(*root, n, v);                \
		path[d++] = t;                                                \
	}                                                                     \
	old = n->MAX;                                                         \
	SET_SIZE(n, v);                                                       \
	name##_fix(n);                                                        \
	while (d > 0 && n->MAX != old) {                                      \
		n = path[--d];                                                \
		old = n->MAX;                                                 \
		name##_fix(n);                                                \
	}                                                                     \
	return true;                                                          \
}                                                                             \
                                                                              \
static __attribute__((unused)) void name##_neighbours(T *t, uintptr_t a, T **pred, T **succ) \
{                                                                             \
	*pred = *succ = NULL;                                                 \
	while (t) {                                                           \
		if ((uintptr_t)t < a) {                                       \
			*pred = t;                                            \
			t = t->R;                                             \
		} else {                                                      \
			*succ = t;                                            \
			t = t->L;                                             \
		}                                                             \
	}                                                                     \
}                                                                             \
                                                                              \
static __attribute__((unused)) T *name##_first_fit(T *t, SZ need)            \
{                                                                             \
	if (name##_max_of(t) < need)                                          \
		return NULL;                                                  \
	while (t) {                                                           \
		if (name##_max_of(t->L) >= need)                              \
			t = t->L;                                             \
		else if (SIZE(t) >= need)                                     \
			return t;                                             \
		else                                                          \
			t = t->R;                                             \
	}                                                                     \
	return NULL;                                                          \
}

#endif
