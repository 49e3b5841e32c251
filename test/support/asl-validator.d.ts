// asl-validator ships no types: the part the tests use.
declare module 'asl-validator' {
  export default function validator(definition: unknown): { isValid: boolean; errorsText: (separator?: string) => string };
}
