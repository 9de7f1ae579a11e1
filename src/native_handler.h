/*
 * native_handler.h
 *	  Handlers written in C against job_engine.h (native_handler.c).
 */
#ifndef JOB_ENGINE_NATIVE_HANDLER_H
#define JOB_ENGINE_NATIVE_HANDLER_H

#include "execution_context.h"
#include "job_engine.h"

extern JobEngineHandler je_load_native_handler(const char *library, const char *symbol);
extern Datum je_call_native_handler(ExecutionContext *job, bool *isnull);

#endif
