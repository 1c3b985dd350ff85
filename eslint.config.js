import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** A lint rule that keeps `files` from importing the src/ folders `forbidden`. */
function layer(files, forbidden, message) {
  const group = forbidden.flatMap((dir) => [`**/${dir}/*`, `**/${dir}/**`]);
  return {
    files,
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group, message }] }] },
  };
}

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'src/api/generated/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: Object.fromEntries(
        [
          'process',
          'console',
          'setTimeout',
          'clearTimeout',
          'setImmediate',
          'setInterval',
          'clearInterval',
          'URL',
          'fetch',
          'performance',
          'globalThis',
        ].map((g) => [g, 'readonly']),
      ),
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  // The boundaries of the layout (README, Layout): the operator and the runtime share only
  // src/contract/, which imports nothing.
  {
    files: ['src/contract/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'ImportDeclaration, ExportAllDeclaration, ExportNamedDeclaration[source]',
          message: 'src/contract/ imports nothing: it is what the operator and the runtime share',
        },
      ],
    },
  },
  // The layers: contract < core < scheduling < engine < controllers, and the runtime apart.
  layer(
    ['src/runtime/**/*.ts'],
    ['core', 'controllers', 'engine', 'scheduling'],
    'the runtime does not import the operator; share through src/contract/',
  ),
  layer(
    ['src/controllers/**/*.ts', 'src/main.ts'],
    ['runtime'],
    'the operator does not import the runtime; share through src/contract/',
  ),
  layer(
    ['src/engine/**/*.ts'],
    ['runtime', 'controllers'],
    'the engine knows no kind and no runtime: kinds implement its Workload',
  ),
  layer(
    ['src/scheduling/**/*.ts'],
    ['runtime', 'controllers', 'engine'],
    'admission knows only capacity and workloads as Admittable',
  ),
  layer(
    ['src/core/**/*.ts'],
    ['runtime', 'controllers', 'engine', 'scheduling'],
    'core is the kind-free base: it imports none of the layers above it',
  ),
);
