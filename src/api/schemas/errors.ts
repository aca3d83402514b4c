import { Type } from 'typebox';
import { ErrorBodySchema } from '../../jobs/types';

/**
 * The error envelope every failed request answers with. The body inside it stays in the core
 * (src/jobs/types.ts) because a failed job stores and returns the same shape.
 */
export const ErrorResponseSchema = Type.Object({ error: ErrorBodySchema }, { description: 'Every error has this shape.' });

/** Response entries for a route's error statuses: `response: { 200: X, ...errorResponses(400, 404) }`. */
export const errorResponses = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ErrorResponseSchema]));
