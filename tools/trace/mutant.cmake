# cmake -P mutant.cmake SRC=<src dir> DST=<dir> : copies src/ and plants the trace tests' bug.
#
# The bug (a double hand-out, the kind of crash the trace tools must reproduce): hk_tcache_refill takes
# a slab's local free list into the thread cache but no longer empties it, so the next refill from that
# slab hands the same blocks out again. DST/MUTANT_STATUS says "planted" or why it could not be.
file(REMOVE_RECURSE ${DST}/src)
file(COPY ${SRC}/ DESTINATION ${DST}/src)
set(f ${DST}/src/tiny/tcache.c)
file(READ ${f} text)
set(pattern "                s->local_free = NULL;\n                s->local_count = 0;\n")
string(FIND "${text}" "${pattern}" at)
if(at EQUAL -1)
  file(WRITE ${DST}/MUTANT_STATUS "not planted: the refill code of src/tiny/tcache.c changed (pattern not found)\n")
else()
  string(REPLACE "${pattern}" "                s->local_count = 0; /* MUTANT: local_free not emptied */\n" text "${text}")
  file(WRITE ${f} "${text}")
  file(WRITE ${DST}/MUTANT_STATUS "planted\n")
endif()
