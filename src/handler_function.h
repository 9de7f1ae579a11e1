/*
 * handler_function.h
 *	  The function of a SQL handler, stored by signature (handler_function.c).
 */
#ifndef JOB_ENGINE_HANDLER_FUNCTION_H
#define JOB_ENGINE_HANDLER_FUNCTION_H

extern Oid	je_resolve_handler_function(const char *signature);

#endif
