import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
  {
    files: ['src/runtime/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '**/core/*',
                '**/controllers/*',
                '**/controllers/**',
                '**/engine/*',
                '**/scheduling/*',
              ],
              message: 'the runtime does not import the operator; share through src/contract/',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/controllers/**/*.ts', 'src/main.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/runtime/*', '**/runtime/**'],
              message: 'the operator does not import the runtime; share through src/contract/',
            },
          ],
        },
      ],
    },
  },
  {
    // The layers below the kinds know no kind: core < scheduling < engine < controllers.
    files: ['src/engine/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/runtime/*', '**/runtime/**', '**/controllers/*', '**/controllers/**'],
              message: 'the engine knows no kind and no runtime: kinds implement its Workload',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/scheduling/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '**/runtime/*',
                '**/runtime/**',
                '**/controllers/*',
                '**/controllers/**',
                '**/engine/*',
              ],
              message: 'admission knows only capacity and workloads as Admittable',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '**/runtime/*',
                '**/runtime/**',
                '**/controllers/*',
                '**/controllers/**',
                '**/engine/*',
                '**/scheduling/*',
              ],
              message: 'core is the kind-free base: it imports none of the layers above it',
            },
          ],
        },
      ],
    },
  },
);
